"""The analysis's tunables, in one place (tests lower some of them to reach code paths with small files)."""

MIN_EXAMPLES = 10  # the service refuses a training file with fewer
PARALLEL_MIN_BYTES = 8 << 20  # below this a second process costs more than it saves
# the pieces processes take in turn: small enough that no process waits long for the last one to end (~60 ms of
# work at 4 MB); at most 16 per process (a 1 GB file: 32 pieces of ~31 MB; 64 per process measured 4 MB more
# memory there and no faster)
PIECE_BYTES = 4 << 20
MAX_PIECES_PER_PROCESS = 16
DEDUP_BLOCK = 1 << 16  # examples looked up at a time among the repeated digests (a few temporary MB at most)
MAX_FINDINGS_PER_CODE = 200_000  # stored; counts stay exact beyond it
REPORT_EVERY = 1024  # lines between progress reports / cancel checks
NARROW = 2**31  # line numbers and byte offsets of a file smaller than this are stored in 32 bits (else 64)
MAX_JSON_DOCUMENT = 256 << 20  # a JSON document is parsed whole to diagnose it; larger ones keep the line view
