/*
 * cluster.c — `raftkv cluster start|stop|status`: a local cluster in one directory.
 *
 * start: the first time, writes DIR/nodes (`ID ADDRESS` per initial voter: ids 1..N,
 * addresses 127.0.0.1:PORT+ID) and creates DIR/n<ID>; then starts every node of DIR/nodes
 * that is not running (`raftkv node ... --bootstrap DIR/nodes`, detached with setsid, stderr
 * to DIR/n<ID>/log), and waits until one node reports itself leader and every started node
 * answers. Running it again restarts the nodes that died (a node whose raft directory is not
 * pristine ignores --bootstrap). Node options given to a start are kept in DIR/node-options
 * and used by later starts that give none (a restarted node keeps its election timeout and
 * snapshot settings).
 * stop: SIGTERM to every DIR/n*\/pid that names a running raftkv process (nodes added later
 * included), SIGKILL after --timeout; a pid file left by a killed node is ignored.
 * Invariants: never signals a process that is not raftkv (the pid file's process is checked
 * in /proc); never rewrites an existing DIR/nodes.
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "raftkv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 64

typedef struct node_ent {
	unsigned id;
	char addr[64];
} node_ent;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_nodes(const char *dir, node_ent *v, unsigned *n)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/nodes", dir);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	char line[256];
	*n = 0;
	while (fgets(line, sizeof(line), f) && *n < MAX_NODES) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%u %63s", &v[*n].id, v[*n].addr) == 2 && v[*n].id)
			(*n)++;
	}
	fclose(f);
	return *n ? 0 : -1;
}

/* The process state letter of pid from /proc/<pid>/stat ('R', 'S', 'Z', ...), 0 if gone. */
static char proc_state(long pid)
{
	char p[64], buf[512];
	snprintf(p, sizeof(p), "/proc/%ld/stat", pid);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = 0;
	char *e = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	return e && e[1] == ' ' ? e[2] : 0;
}

/* The pid in DIR/n<ID>/pid if that process runs raftkv node, else 0. A process killed a
 * moment ago may still hold the store's lock while its memory is torn down (its cmdline
 * reads empty then): wait, up to 10 s, until it is gone or a zombie (which holds nothing). */
static pid_t node_pid(const char *ndir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/pid", ndir);
	FILE *f = fopen(p, "r");
	if (!f)
		return 0;
	long pid = 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 1)
		return 0;
	char cmd[512];
	ssize_t r = 0;
	for (int tries = 0; tries < 200; tries++) {
		char st = proc_state(pid);
		if (st == 0 || st == 'Z' || st == 'X')
			return 0;
		snprintf(p, sizeof(p), "/proc/%ld/cmdline", pid);
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			return 0;
		r = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (r > 0)
			break;
		usleep(50 * 1000); /* exiting */
	}
	if (r <= 0)
		return (pid_t)pid; /* still exiting after 10 s: treat as running */
	cmd[r] = 0;
	/* argv[0] ends in raftkv and argv[1] is "node" */
	size_t l0 = strlen(cmd);
	if (l0 < 6 || strcmp(cmd + l0 - 6, "raftkv") || (size_t)r <= l0 + 1 ||
	    strcmp(cmd + l0 + 1, "node"))
		return 0;
	return (pid_t)pid;
}

/* Ask one socket for `status`: 0 and the line, or -1. */
static int ask_status(const char *sock, char *out, size_t cap, double timeout)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(a.sun_path) ||
	    (strcpy(a.sun_path, sock), connect(fd, (struct sockaddr *)&a, sizeof(a)))) {
		close(fd);
		return -1;
	}
	static const char req[] = "status\n";
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
		close(fd);
		return -1;
	}
	size_t len = 0;
	double end = now_s() + timeout;
	while (len + 1 < cap) {
		struct pollfd pf = {fd, POLLIN, 0};
		int ms = (int)((end - now_s()) * 1000);
		if (ms <= 0 || poll(&pf, 1, ms) <= 0)
			break;
		ssize_t r = read(fd, out + len, cap - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(out, '\n', len))
			break;
	}
	close(fd);
	out[len] = 0;
	char *nl = strchr(out, '\n');
	if (!nl)
		return -1;
	*nl = 0;
	return strncmp(out, "STATUS ", 7) ? -1 : 0;
}

static int spawn_node(const char *dir, const node_ent *e, char **extra, int nextra)
{
	char ndir[PATH_MAX], logp[PATH_MAX + 8], boot[PATH_MAX], id[16];
	snprintf(ndir, sizeof(ndir), "%s/n%u", dir, e->id);
	snprintf(logp, sizeof(logp), "%s/log", ndir);
	snprintf(boot, sizeof(boot), "%s/nodes", dir);
	snprintf(id, sizeof(id), "%u", e->id);
	if (mkdir(ndir, 0755) && errno != EEXIST)
		return -1;
	char exe[PATH_MAX];
	ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (l <= 0)
		return -1;
	exe[l] = 0;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setsid();
		int in = open("/dev/null", O_RDONLY);
		int out = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (in < 0 || out < 0)
			_exit(127);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		char *args[32 + 2 * 16];
		int a = 0;
		args[a++] = "raftkv";
		args[a++] = "node";
		args[a++] = "--dir";
		args[a++] = ndir;
		args[a++] = "--id";
		args[a++] = id;
		args[a++] = "--address";
		args[a++] = (char *)e->addr;
		args[a++] = "--bootstrap";
		args[a++] = boot;
		for (int i = 0; i < nextra && a < 30; i++)
			args[a++] = extra[i];
		args[a] = NULL;
		execv(exe, args);
		_exit(127);
	}
	return 0;
}

static int cluster_start(int argc, char **argv)
{
	const char *dir = NULL;
	uint64_t nodes = 3, port = 7000;
	bool nodes_set = false;
	char *extra[16];
	int nextra = 0;
	double timeout = 30;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;
		if (!strcmp(a, "--dir") && has) {
			dir = argv[++i];
		} else if (!strcmp(a, "--nodes") && has) {
			if (kv_parse_u64(argv[++i], &nodes) || nodes < 1 || nodes > 9) {
				fprintf(stderr, "raftkv cluster: --nodes must be 1..9\n");
				return RKV_EXIT_USAGE;
			}
			nodes_set = true;
		} else if (!strcmp(a, "--port") && has) {
			if (kv_parse_u64(argv[++i], &port) || port < 1024 || port > 65000) {
				fprintf(stderr, "raftkv cluster: --port must be 1024..65000\n");
				return RKV_EXIT_USAGE;
			}
		} else if (!strcmp(a, "--timeout") && has) {
			if (kv_parse_seconds(argv[++i], &timeout)) {
				fprintf(stderr, "raftkv cluster: bad --timeout\n");
				return RKV_EXIT_USAGE;
			}
		} else if ((!strcmp(a, "--budget") || !strcmp(a, "--election-timeout") ||
			    !strcmp(a, "--snapshot-every") || !strcmp(a, "--snapshot-trailing") ||
			    !strcmp(a, "--max-snapshot")) && has && nextra < 14) {
			extra[nextra++] = argv[i];
			extra[nextra++] = argv[++i];
		} else {
			fprintf(stderr, "raftkv cluster start: unknown or incomplete option %s\n", a);
			return RKV_EXIT_USAGE;
		}
	}
	if (!dir) {
		fprintf(stderr, "raftkv cluster start: --dir is required\n");
		return RKV_EXIT_USAGE;
	}
	if (strlen(dir) > 80) { /* the node sockets' paths must fit sun_path (108 bytes) */
		fprintf(stderr, "raftkv cluster: --dir %s is longer than 80 bytes (unix socket "
			"paths are limited)\n", dir);
		return RKV_EXIT_USAGE;
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "raftkv cluster: mkdir %s: %s\n", dir, strerror(errno));
		return RKV_EXIT_FAIL;
	}
	node_ent v[MAX_NODES];
	unsigned n = 0;
	if (read_nodes(dir, v, &n)) {
		char p[PATH_MAX], tmp[PATH_MAX];
		snprintf(p, sizeof(p), "%s/nodes", dir);
		snprintf(tmp, sizeof(tmp), "%s/nodes.tmp", dir);
		FILE *f = fopen(tmp, "w");
		if (!f) {
			fprintf(stderr, "raftkv cluster: %s: %s\n", tmp, strerror(errno));
			return RKV_EXIT_FAIL;
		}
		for (unsigned i = 1; i <= nodes; i++)
			fprintf(f, "%u 127.0.0.1:%u\n", i, (unsigned)port + i);
		if (fflush(f) || fsync(fileno(f)) || fclose(f) || rename(tmp, p)) {
			fprintf(stderr, "raftkv cluster: write %s: %s\n", p, strerror(errno));
			return RKV_EXIT_FAIL;
		}
		if (read_nodes(dir, v, &n))
			return RKV_EXIT_FAIL;
	} else if (nodes_set && nodes != n) {
		fprintf(stderr, "raftkv cluster: %s/nodes already names %u nodes; --nodes ignored\n",
			dir, n);
	}
	/* the node options: those given now (kept in DIR/node-options for later starts), else
	 * those of the last start that gave some — a restarted node keeps its settings */
	static char kept[16][128];
	char opath[PATH_MAX], otmp[PATH_MAX + 8];
	snprintf(opath, sizeof(opath), "%s/node-options", dir);
	snprintf(otmp, sizeof(otmp), "%s/node-options.tmp", dir);
	if (nextra) {
		FILE *f = fopen(otmp, "w");
		for (int i = 0; f && i < nextra; i++)
			fprintf(f, "%s\n", extra[i]);
		if (!f || fflush(f) || fsync(fileno(f)) || fclose(f) || rename(otmp, opath)) {
			fprintf(stderr, "raftkv cluster: write %s: %s\n", opath, strerror(errno));
			return RKV_EXIT_FAIL;
		}
	} else {
		FILE *f = fopen(opath, "r");
		while (f && nextra < 14 && fgets(kept[nextra], sizeof(kept[0]), f)) {
			kept[nextra][strcspn(kept[nextra], "\n")] = 0;
			extra[nextra] = kept[nextra];
			nextra++;
		}
		if (f)
			fclose(f);
	}
	unsigned started = 0;
	for (unsigned i = 0; i < n; i++) {
		char ndir[PATH_MAX];
		snprintf(ndir, sizeof(ndir), "%s/n%u", dir, v[i].id);
		if (node_pid(ndir))
			continue;
		if (spawn_node(dir, &v[i], extra, nextra)) {
			fprintf(stderr, "raftkv cluster: start node %u: %s\n", v[i].id, strerror(errno));
			return RKV_EXIT_FAIL;
		}
		started++;
	}
	/* wait for a leader and every node's answer */
	double end = now_s() + timeout;
	char line[512];
	for (;;) {
		unsigned answered = 0, leader = 0;
		for (unsigned i = 0; i < n; i++) {
			char sock[PATH_MAX];
			snprintf(sock, sizeof(sock), "%s/n%u/%s", dir, v[i].id, RKV_SOCK_NAME);
			if (ask_status(sock, line, sizeof(line), 1.0) == 0) {
				answered++;
				if (strstr(line, " state=leader "))
					leader = v[i].id;
			}
		}
		int st;
		pid_t dead;
		while ((dead = waitpid(-1, &st, WNOHANG)) > 0)
			fprintf(stderr, "raftkv cluster: a node exited at start-up (status %d): see "
				"%s/n*/log\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), dir);
		if (answered == n && leader) {
			printf("cluster %s: %u nodes (%u started), leader n%u\n", dir, n, started, leader);
			return RKV_EXIT_OK;
		}
		if (now_s() > end) {
			fprintf(stderr, "raftkv cluster: after %.0f s, %u of %u nodes answer and %s; "
				"see %s/n*/log\n", timeout, answered, n,
				leader ? "there is a leader" : "none is leader", dir);
			return RKV_EXIT_FAIL;
		}
		usleep(100 * 1000);
	}
}

static int cluster_stop(int argc, char **argv)
{
	const char *dir = NULL;
	double timeout = 10;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (kv_parse_seconds(argv[++i], &timeout)) {
				fprintf(stderr, "raftkv cluster: bad --timeout\n");
				return RKV_EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "raftkv cluster stop: unknown option %s\n", argv[i]);
			return RKV_EXIT_USAGE;
		}
	}
	if (!dir) {
		fprintf(stderr, "raftkv cluster stop: --dir is required\n");
		return RKV_EXIT_USAGE;
	}
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "raftkv cluster: %s: %s\n", dir, strerror(errno));
		return RKV_EXIT_FAIL;
	}
	pid_t pids[MAX_NODES];
	unsigned np = 0;
	struct dirent *de;
	while ((de = readdir(d)) && np < MAX_NODES) {
		if (de->d_name[0] != 'n' || !de->d_name[1] ||
		    strspn(de->d_name + 1, "0123456789") != strlen(de->d_name + 1))
			continue;
		char ndir[PATH_MAX];
		snprintf(ndir, sizeof(ndir), "%s/%s", dir, de->d_name);
		pid_t pid = node_pid(ndir);
		if (pid && kill(pid, SIGTERM) == 0)
			pids[np++] = pid;
	}
	closedir(d);
	double end = now_s() + timeout;
	unsigned left = np;
	while (left && now_s() < end) {
		usleep(50 * 1000);
		left = 0;
		for (unsigned i = 0; i < np; i++) {
			char st = proc_state(pids[i]);
			if (st && st != 'Z' && st != 'X') /* a zombie holds nothing */
				left++;
		}
	}
	for (unsigned i = 0; i < np && left; i++)
		if (kill(pids[i], 0) == 0)
			(void)kill(pids[i], SIGKILL);
	printf("cluster %s: %u nodes stopped%s\n", dir, np, left ? " (some with SIGKILL)" : "");
	return RKV_EXIT_OK;
}

int rkv_cmd_cluster(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "start"))
		return cluster_start(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "stop"))
		return cluster_stop(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "status")) {
		const char *dir = argc == 4 && !strcmp(argv[2], "--dir") ? argv[3] : NULL;
		if (!dir) {
			fprintf(stderr, "raftkv cluster status: --dir D\n");
			return RKV_EXIT_USAGE;
		}
		char *args[] = {"status", NULL};
		return rkv_cmd_client(dir, NULL, 1, args);
	}
	fprintf(stderr, "usage: raftkv cluster start --dir D [--nodes N] [--port P] [--timeout S]\n"
			"                         [--budget SIZE] [--election-timeout MS]\n"
			"                         [--snapshot-every N] [--snapshot-trailing N]\n"
			"       raftkv cluster stop --dir D [--timeout S]\n"
			"       raftkv cluster status --dir D\n");
	return RKV_EXIT_USAGE;
}
