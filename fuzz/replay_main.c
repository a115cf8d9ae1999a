/*
 * replay_main.c — a main() for the fuzz targets in builds without libFuzzer (gcc, the
 * sanitizer and coverage builds): runs LLVMFuzzerTestOneInput once on every file named on
 * the command line and every file in every directory named, so the seed corpora and the
 * regression inputs are replayed by every build's CTest. A named file or folder that does
 * not exist, or a run that finds no input at all, fails.
 */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <dirent.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (!buf)
			abort();
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned files = 0;
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		if (argv[i][0] == '-')
			continue; /* libFuzzer flags */
		if (stat(argv[i], &sb)) { /* a corpus that is not there is a failure, not 0 inputs */
			perror(argv[i]);
			bad = 1;
			continue;
		}
		if (!S_ISDIR(sb.st_mode)) {
			bad |= run_file(argv[i]);
			files++;
			continue;
		}
		struct dirent **ents;
		int n = scandir(argv[i], &ents, NULL, alphasort);
		for (int j = 0; j < n; j++) {
			char p[4096];
			snprintf(p, sizeof(p), "%s/%s", argv[i], ents[j]->d_name);
			if (!stat(p, &sb) && S_ISREG(sb.st_mode)) {
				bad |= run_file(p);
				files++;
			}
			free(ents[j]);
		}
		free(ents);
	}
	printf("replayed %u inputs\n", files);
	if (!files) {
		fprintf(stderr, "replay: no input found: nothing was tested\n");
		bad = 1;
	}
	return bad;
}
