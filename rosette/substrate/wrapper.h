/* The DPDK headers rosette binds. build.rs runs bindgen over this file and compiles the generated
 * wrappers of the static-inline functions with all of DPDK's pkg-config cflags. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_memory.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include <rte_version.h>
#include <rte_telemetry.h>
#include <rte_alarm.h>
#include <rte_interrupts.h>
#include <rte_pdump.h>

/* Accessors for DPDK's per-lcore (thread-local) variables; see shim.c. */
int rosette_errno(void);
void rosette_set_errno(int value);
/* The CPUs lcore `lcore` runs on: sets cpus[i] = 1 for every CPU i < n in its cpuset, 0 otherwise;
 * returns how many are set. */
unsigned int rosette_lcore_cpus(unsigned int lcore, unsigned char *cpus, unsigned int n);
