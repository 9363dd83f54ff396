/* Shared appends from C: every rank appends RECORDS records of random length to one file
 * through brlock's shared file pointer (no file locks), then one ordered record each
 * (collective, in rank order). Rank 0 then reads the file back and checks that every record
 * is there exactly once and intact, and that the ordered records are in rank order.
 *
 * Usage: mpirun -np P append FILE [RECORDS]        (default 10000 records per rank)
 * Rank 0 prints "append ranks=P records=N bytes=B missing=M duplicates=D corrupt=C ok=0|1".
 * Build: mpicc append.c $(pkg-config --cflags --libs brlock) -o append
 */
#include <brlock.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC 0x6b636f6cu /* "lock" */
#define MAX_PAYLOAD 200

struct header {
    uint32_t magic, rank, seq, len;
};

static unsigned char byte_of(uint32_t rank, uint32_t seq, uint32_t i) {
    return (unsigned char)(rank * 131u + seq * 7u + i * 13u + 1u);
}

/* Builds record (rank, seq) with a payload of `len` bytes into `buf`; returns its size. */
static size_t make_record(unsigned char *buf, uint32_t rank, uint32_t seq, uint32_t len) {
    struct header h = {MAGIC, rank, seq, len};
    memcpy(buf, &h, sizeof h);
    for (uint32_t i = 0; i < len; i++) buf[sizeof h + i] = byte_of(rank, seq, i);
    return sizeof h + len;
}

static void must(int status, const char *what) {
    if (status != BRLOCK_OK) {
        fprintf(stderr, "append: %s: %s\n", what, brlock_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: append FILE [RECORDS]\n");
        MPI_Finalize();
        return 2;
    }
    const char *path = argv[1];
    uint32_t records = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 10000;

    brlock_append_t *file = NULL;
    must(brlock_append_open(MPI_COMM_WORLD, path, BRLOCK_APPEND_TRUNCATE, &file), "open");
    unsigned char buf[sizeof(struct header) + MAX_PAYLOAD];
    unsigned seed = 2026u + 977u * (unsigned)rank;
    for (uint32_t seq = 0; seq < records; seq++) {
        uint32_t len = 1 + (uint32_t)(rand_r(&seed) % MAX_PAYLOAD);
        size_t n = make_record(buf, (uint32_t)rank, seq, len);
        uint64_t offset;
        must(brlock_append_write(file, buf, n, &offset), "append");
    }
    /* One ordered record per rank: seq = records, length rank + 1. */
    size_t n = make_record(buf, (uint32_t)rank, records, (uint32_t)rank + 1);
    uint64_t ordered_at;
    must(brlock_append_ordered(file, buf, n, &ordered_at), "ordered append");
    uint64_t end = 0;
    must(brlock_append_close(&file, &end), "close");

    if (rank == 0) {
        FILE *f = fopen(path, "rb");
        if (!f) {
            perror("append: reopen");
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        unsigned char *seen = calloc((size_t)size * (records + 1), 1);
        long corrupt = 0, duplicates = 0, missing = 0, bytes = 0;
        int next_ordered = 0, ordered_ok = 1;
        struct header h;
        unsigned char payload[MAX_PAYLOAD];
        while (fread(&h, sizeof h, 1, f) == 1) {
            bytes += (long)sizeof h;
            if (h.magic != MAGIC || h.rank >= (uint32_t)size || h.seq > records ||
                h.len == 0 || h.len > MAX_PAYLOAD || fread(payload, 1, h.len, f) != h.len) {
                corrupt++;
                break; /* cannot resynchronise */
            }
            bytes += h.len;
            for (uint32_t i = 0; i < h.len; i++)
                if (payload[i] != byte_of(h.rank, h.seq, i)) {
                    corrupt++;
                    break;
                }
            unsigned char *s = &seen[(size_t)h.rank * (records + 1) + h.seq];
            if (*s) duplicates++;
            *s = 1;
            if (h.seq == records) {
                ordered_ok &= (int)h.rank == next_ordered;
                next_ordered++;
            }
        }
        fclose(f);
        for (size_t i = 0; i < (size_t)size * (records + 1); i++) missing += !seen[i];
        int ok = !corrupt && !duplicates && !missing && ordered_ok && (uint64_t)bytes == end;
        printf("append ranks=%d records=%ld bytes=%ld end=%llu missing=%ld duplicates=%ld "
               "corrupt=%ld ordered_in_rank_order=%d ok=%d\n",
               size, (long)size * (records + 1), bytes, (unsigned long long)end, missing,
               duplicates, corrupt, ordered_ok, ok);
        free(seen);
    }
    MPI_Finalize();
    return 0;
}
