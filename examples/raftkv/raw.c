/*
 * raw.c — `raftkv raw [--node ID]`: the line protocol by hand or from a script. Copies stdin
 * to one node's socket and the node's answers to stdout, unchanged, until the node has
 * answered everything sent (it closes its side after end of input), like kvstore's `batch`
 * but for a remote node: `printf 'hello 1\nput 1 k v\n' | raftkv -c C raw --node 1`.
 * With -s SOCKET, that socket; otherwise node ID of the cluster (default: the first found).
 * No redirection and no retry: NOTLEADER and RETRY are printed as they come.
 */
#define _GNU_SOURCE
#include "kvstore.h"
#include "raftkv.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int first_node(const char *cluster, uint64_t *id)
{
	DIR *d = opendir(cluster);
	if (!d)
		return -1;
	struct dirent *de;
	uint64_t best = 0;
	while ((de = readdir(d))) {
		uint64_t v;
		if (de->d_name[0] == 'n' && !kv_parse_u64(de->d_name + 1, &v) && v &&
		    (!best || v < best))
			best = v;
	}
	closedir(d);
	*id = best;
	return best ? 0 : -1;
}

int rkv_cmd_raw(const char *cluster, const char *sock, int argc, char **argv)
{
	uint64_t id = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--node") && i + 1 < argc && !kv_parse_u64(argv[i + 1], &id) &&
		    id) {
			i++;
		} else {
			fprintf(stderr, "usage: raftkv [-c CLUSTER | -s SOCKET] raw [--node ID]\n");
			return RKV_EXIT_USAGE;
		}
	}
	char path[PATH_MAX];
	if (sock) {
		snprintf(path, sizeof(path), "%s", sock);
	} else {
		if (!id && first_node(cluster, &id)) {
			fprintf(stderr, "raftkv raw: no node in %s\n", cluster);
			return RKV_EXIT_FAIL;
		}
		snprintf(path, sizeof(path), "%s/n%llu/%s", cluster, (unsigned long long)id,
			 RKV_SOCK_NAME);
	}
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "raftkv raw: socket path %s is too long\n", path);
		return RKV_EXIT_USAGE;
	}
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		fprintf(stderr, "raftkv raw: connect %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return RKV_EXIT_FAIL;
	}
	signal(SIGPIPE, SIG_IGN);
	char buf[65536];
	bool in_open = true;
	for (;;) {
		struct pollfd p[2] = {{fd, POLLIN, 0}, {0, in_open ? POLLIN : 0, 0}};
		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r <= 0)
				break; /* the node answered everything and closed */
			if (kv_write_all(1, buf, (size_t)r))
				break;
		}
		if (in_open && p[1].revents) {
			ssize_t r = read(0, buf, sizeof(buf));
			if (r <= 0) {
				in_open = false;
				shutdown(fd, SHUT_WR);
			} else if (kv_write_all(fd, buf, (size_t)r)) {
				/* the node closed (an overlong line): print what it said */
				in_open = false;
			}
		}
	}
	close(fd);
	return RKV_EXIT_OK;
}
