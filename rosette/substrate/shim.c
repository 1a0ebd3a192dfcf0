/* Accessors for DPDK's per-lcore variables. They are C thread-locals, which bindgen cannot express:
 * binding them directly links and then crashes, so Rust reads them through these functions. */
#include "wrapper.h"

int rosette_errno(void) { return rte_errno; }

void rosette_set_errno(int value) { rte_errno = value; }
