/*
 * main.c — raftkv's command line: global options, dispatch, usage (README "Command line").
 */
#define _GNU_SOURCE
#include "raftkv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"usage: raftkv [-c CLUSTER | -s SOCKET] COMMAND [ARGS]\n"
	"\n"
	"A replicated key-value service: pagebox stores under canonical raft (README.md).\n"
	"  -c CLUSTER   the cluster directory (default $RAFTKV_CLUSTER, else ./raftkv-cluster);\n"
	"               nodes are found as CLUSTER/n<ID>/sock\n"
	"  -s SOCKET    talk to the one node at SOCKET (a standalone node)\n"
	"\n"
	"servers:\n"
	"  cluster start --dir D [--nodes N] [--port P] [node options]   start N nodes, wait for a leader\n"
	"  cluster stop --dir D                                          stop them (SIGTERM)\n"
	"  node --dir DIR --id ID --address 127.0.0.1:PORT [...]          one node (raftkv node --help)\n"
	"clients (writes go through the leader; OK = committed by a quorum, applied on the leader):\n"
	"  put K V | del K | txn (put K V / del K lines on stdin)\n"
	"  get K | scan [START [END]] [--limit N]       linearizable (through the leader)\n"
	"  sget [--node ID] K | sscan [--node ID] ...   from one node's store: possibly stale\n"
	"  status | digest | barrier | add ID ADDRESS | remove ID | transfer [ID]\n"
	"  raw [--node ID]                              the line protocol: stdin to a node, answers to stdout\n"
	"  stress --threads N --seconds S --ack-file F [--batch K] [--value-size B] [--stamp]\n"
	"  check [--ack-file F] [--wait S]              every node identical, acknowledged writes present\n"
	"Keys and values use kvstore's %HH encoding. Exit: 0 ok, 1 not found / violations,\n"
	"2 usage, 3 failure (no leader, store error, timeout).\n";

int main(int argc, char **argv)
{
	const char *cluster = getenv("RAFTKV_CLUSTER");
	const char *sock = NULL;
	if (!cluster || !cluster[0])
		cluster = "./raftkv-cluster";
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "-s")) && i + 1 < argc) {
			if (argv[i][1] == 'c')
				cluster = argv[i + 1];
			else
				sock = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			return RKV_EXIT_OK;
		} else {
			fprintf(stderr, "raftkv: unknown option %s\n%s", argv[i], usage_text);
			return RKV_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return RKV_EXIT_USAGE;
	}
	const char *cmd = argv[i];
	if (!strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return RKV_EXIT_OK;
	}
	if (!strcmp(cmd, "node"))
		return rkv_cmd_node(argc - i, argv + i);
	if (!strcmp(cmd, "cluster"))
		return rkv_cmd_cluster(argc - i, argv + i);
	if (sock)
		cluster = NULL;
	if (!strcmp(cmd, "stress"))
		return rkv_cmd_stress(cluster, sock, argc - i, argv + i);
	if (!strcmp(cmd, "check"))
		return rkv_cmd_check(cluster, argc - i, argv + i);
	if (!strcmp(cmd, "raw"))
		return rkv_cmd_raw(cluster, sock, argc - i, argv + i);
	return rkv_cmd_client(cluster, sock, argc - i, argv + i);
}
