/* pympc's yielding waits: a PMPI shim for runs with more ranks than cores.
 *
 * MPICH (and Open MPI by default) wait by busy polling: a rank blocked in MPI_Wait or in
 * a collective spins on its core until the message arrives.  With more ranks than cores
 * the rank it waits for is not running, and only the kernel's timer tick (4 ms here)
 * takes the core away from the spinner: every blocking message then costs milliseconds.
 *
 * This library, put before libmpi with LD_PRELOAD (pympc's launcher does so when a job
 * has more ranks than usable cores; see docs/oversubscribe.md), replaces each blocking
 * call that mpi4py and HDF5 use by its nonblocking form followed by a loop of MPI_Test
 * and sched_yield(): the core goes to a rank that has work at once.  The MPI semantics
 * are the standard's: a blocking call is its nonblocking call followed by a wait
 * (MPI-4.0 sections 3.7 and 6.12).  Only the reduction algorithm may differ from the
 * blocking one's (MPICH picks them separately), as it may between any two MPI builds.
 *
 * Built by `./run setup` with the MPI compiler wrapper, so it links the libmpi that
 * mpi4py and h5py load.  Every function is "Local." in pympc's docstring terms except
 * those that replace collectives, which stay as collective as the calls they replace.
 */
#include <mpi.h>
#include <sched.h>

static unsigned long long yw_polls = 0;

/* Local. How many times a wait of this library gave the core away (a test reads it
 * through ctypes to see that the shim is in place). */
unsigned long long pympc_yieldwait_polls(void) { return yw_polls; }

/* Call CALL (an MPI_Test-like call returning an error code) until it fails or DONE
 * holds, giving the core away between tries; return CALL's code. */
#define YW_POLL(CALL, DONE)                                                            \
    for (;;) {                                                                         \
        int rc_ = CALL;                                                                \
        if (rc_ != MPI_SUCCESS || (DONE))                                              \
            return rc_;                                                                \
        yw_polls++;                                                                    \
        sched_yield();                                                                 \
    }

static int yw_wait(MPI_Request *req, MPI_Status *status)
{
    int flag = 0;
    YW_POLL(PMPI_Test(req, &flag, status), flag)
}

/* ---- waits and probes ---------------------------------------------------------- */

int MPI_Wait(MPI_Request *req, MPI_Status *status) { return yw_wait(req, status); }

int MPI_Waitall(int n, MPI_Request reqs[], MPI_Status statuses[])
{
    int flag = 0;
    YW_POLL(PMPI_Testall(n, reqs, &flag, statuses), flag)
}

int MPI_Waitany(int n, MPI_Request reqs[], int *index, MPI_Status *status)
{
    int flag = 0;
    YW_POLL(PMPI_Testany(n, reqs, index, &flag, status), flag)
}

int MPI_Waitsome(int n, MPI_Request reqs[], int *outcount, int indices[], MPI_Status statuses[])
{
    /* *outcount: the completed requests, or MPI_UNDEFINED when none is active */
    YW_POLL(PMPI_Testsome(n, reqs, outcount, indices, statuses), *outcount != 0)
}

int MPI_Probe(int source, int tag, MPI_Comm comm, MPI_Status *status)
{
    int flag = 0;
    YW_POLL(PMPI_Iprobe(source, tag, comm, &flag, status), flag)
}

int MPI_Mprobe(int source, int tag, MPI_Comm comm, MPI_Message *message, MPI_Status *status)
{
    int flag = 0;
    YW_POLL(PMPI_Improbe(source, tag, comm, &flag, message, status), flag)
}

/* ---- point to point: the nonblocking call, then the yielding wait -------------- */

/* One blocking call NAME(PARAMS) as INAME(ARGS..., &r) followed by a wait on r. */
#define YW(NAME, INAME, PARAMS, ARGS, STATUS)                                          \
    int NAME PARAMS                                                                    \
    {                                                                                  \
        MPI_Request r;                                                                 \
        int rc = INAME ARGS;                                                           \
        return rc != MPI_SUCCESS ? rc : yw_wait(&r, STATUS);                           \
    }

/* The classic (int counts) and the MPI-4 large-count (_c) form of each call: mpi4py 4
 * calls the _c forms, HDF5 the classic ones. */
#define YW2(NAME, INAME, PARAMS, ARGS, STATUS)                                     \
    YW(NAME, INAME, PARAMS(int), ARGS, STATUS)                                         \
    YW(NAME##_c, INAME##_c, PARAMS(MPI_Count), ARGS, STATUS)

#define P_SEND(C) (const void *buf, C count, MPI_Datatype t, int dest, int tag, MPI_Comm comm)
#define A_SEND (buf, count, t, dest, tag, comm, &r)
YW2(MPI_Send, PMPI_Isend, P_SEND, A_SEND, MPI_STATUS_IGNORE)
YW2(MPI_Ssend, PMPI_Issend, P_SEND, A_SEND, MPI_STATUS_IGNORE)
YW2(MPI_Rsend, PMPI_Irsend, P_SEND, A_SEND, MPI_STATUS_IGNORE)
YW2(MPI_Bsend, PMPI_Ibsend, P_SEND, A_SEND, MPI_STATUS_IGNORE)

#define P_RECV(C) (void *buf, C count, MPI_Datatype t, int src, int tag, MPI_Comm comm, MPI_Status *status)
YW2(MPI_Recv, PMPI_Irecv, P_RECV, (buf, count, t, src, tag, comm, &r), status)

#define P_MRECV(C) (void *buf, C count, MPI_Datatype t, MPI_Message *message, MPI_Status *status)
YW2(MPI_Mrecv, PMPI_Imrecv, P_MRECV, (buf, count, t, message, &r), status)

#define YW_SENDRECV(NAME, ISEND, IRECV, C)                                             \
    int NAME(const void *sbuf, C scount, MPI_Datatype stype, int dest, int stag,      \
             void *rbuf, C rcount, MPI_Datatype rtype, int src, int rtag,              \
             MPI_Comm comm, MPI_Status *status)                                        \
    {                                                                                  \
        MPI_Request r[2];                                                              \
        int rc = IRECV(rbuf, rcount, rtype, src, rtag, comm, &r[0]);                   \
        if (rc != MPI_SUCCESS)                                                         \
            return rc;                                                                 \
        rc = ISEND(sbuf, scount, stype, dest, stag, comm, &r[1]);                      \
        if (rc != MPI_SUCCESS) {                                                       \
            PMPI_Cancel(&r[0]);                                                        \
            PMPI_Request_free(&r[0]);                                                  \
            return rc;                                                                 \
        }                                                                              \
        rc = yw_wait(&r[0], status);                                                   \
        int rc2 = yw_wait(&r[1], MPI_STATUS_IGNORE);                                   \
        return rc != MPI_SUCCESS ? rc : rc2;                                           \
    }
YW_SENDRECV(MPI_Sendrecv, PMPI_Isend, PMPI_Irecv, int)
YW_SENDRECV(MPI_Sendrecv_c, PMPI_Isend_c, PMPI_Irecv_c, MPI_Count)

/* ---- collectives: the nonblocking collective, then the yielding wait ---------- */

#define NS MPI_STATUS_IGNORE
YW(MPI_Barrier, PMPI_Ibarrier, (MPI_Comm comm), (comm, &r), NS)

#define P_BCAST(C) (void *buf, C count, MPI_Datatype t, int root, MPI_Comm comm)
YW2(MPI_Bcast, PMPI_Ibcast, P_BCAST, (buf, count, t, root, comm, &r), NS)

#define P_RED(C) (const void *s, void *d, C count, MPI_Datatype t, MPI_Op op, MPI_Comm comm)
#define A_RED (s, d, count, t, op, comm, &r)
YW2(MPI_Allreduce, PMPI_Iallreduce, P_RED, A_RED, NS)
YW2(MPI_Scan, PMPI_Iscan, P_RED, A_RED, NS)
YW2(MPI_Exscan, PMPI_Iexscan, P_RED, A_RED, NS)
YW2(MPI_Reduce_scatter_block, PMPI_Ireduce_scatter_block, P_RED, A_RED, NS)

#define P_REDUCE(C) (const void *s, void *d, C count, MPI_Datatype t, MPI_Op op, int root, MPI_Comm comm)
YW2(MPI_Reduce, PMPI_Ireduce, P_REDUCE, (s, d, count, t, op, root, comm, &r), NS)

#define P_REDSC(C) (const void *s, void *d, const C counts[], MPI_Datatype t, MPI_Op op, MPI_Comm comm)
YW2(MPI_Reduce_scatter, PMPI_Ireduce_scatter, P_REDSC, (s, d, counts, t, op, comm, &r), NS)

/* (send, count, type, recv, count, type[, root], comm) */
#define P_ALL(C) (const void *s, C sc, MPI_Datatype st, void *d, C rc_, MPI_Datatype rt, MPI_Comm comm)
#define A_ALL (s, sc, st, d, rc_, rt, comm, &r)
YW2(MPI_Allgather, PMPI_Iallgather, P_ALL, A_ALL, NS)
YW2(MPI_Alltoall, PMPI_Ialltoall, P_ALL, A_ALL, NS)
YW2(MPI_Neighbor_allgather, PMPI_Ineighbor_allgather, P_ALL, A_ALL, NS)
YW2(MPI_Neighbor_alltoall, PMPI_Ineighbor_alltoall, P_ALL, A_ALL, NS)

#define P_ROOT(C) (const void *s, C sc, MPI_Datatype st, void *d, C rc_, MPI_Datatype rt, int root, MPI_Comm comm)
#define A_ROOT (s, sc, st, d, rc_, rt, root, comm, &r)
YW2(MPI_Gather, PMPI_Igather, P_ROOT, A_ROOT, NS)
YW2(MPI_Scatter, PMPI_Iscatter, P_ROOT, A_ROOT, NS)

/* the v forms: counts are int (classic) or MPI_Count (_c), displacements int or MPI_Aint */
#define YW_ALLGATHERV(NAME, INAME, C, D)                                               \
    YW(NAME, INAME, (const void *s, C sc, MPI_Datatype st, void *d, const C rcs[],     \
       const D dis[], MPI_Datatype rt, MPI_Comm comm),                                 \
       (s, sc, st, d, rcs, dis, rt, comm, &r), NS)
YW_ALLGATHERV(MPI_Allgatherv, PMPI_Iallgatherv, int, int)
YW_ALLGATHERV(MPI_Allgatherv_c, PMPI_Iallgatherv_c, MPI_Count, MPI_Aint)
YW_ALLGATHERV(MPI_Neighbor_allgatherv, PMPI_Ineighbor_allgatherv, int, int)
YW_ALLGATHERV(MPI_Neighbor_allgatherv_c, PMPI_Ineighbor_allgatherv_c, MPI_Count, MPI_Aint)

#define YW_GATHERV(NAME, INAME, C, D)                                                  \
    YW(NAME, INAME, (const void *s, C sc, MPI_Datatype st, void *d, const C rcs[],     \
       const D dis[], MPI_Datatype rt, int root, MPI_Comm comm),                       \
       (s, sc, st, d, rcs, dis, rt, root, comm, &r), NS)
YW_GATHERV(MPI_Gatherv, PMPI_Igatherv, int, int)
YW_GATHERV(MPI_Gatherv_c, PMPI_Igatherv_c, MPI_Count, MPI_Aint)

#define YW_SCATTERV(NAME, INAME, C, D)                                                 \
    YW(NAME, INAME, (const void *s, const C scs[], const D dis[], MPI_Datatype st,     \
       void *d, C rc_, MPI_Datatype rt, int root, MPI_Comm comm),                      \
       (s, scs, dis, st, d, rc_, rt, root, comm, &r), NS)
YW_SCATTERV(MPI_Scatterv, PMPI_Iscatterv, int, int)
YW_SCATTERV(MPI_Scatterv_c, PMPI_Iscatterv_c, MPI_Count, MPI_Aint)

#define YW_ALLTOALLV(NAME, INAME, C, D)                                                \
    YW(NAME, INAME, (const void *s, const C scs[], const D sdis[], MPI_Datatype st,    \
       void *d, const C rcs[], const D rdis[], MPI_Datatype rt, MPI_Comm comm),        \
       (s, scs, sdis, st, d, rcs, rdis, rt, comm, &r), NS)
YW_ALLTOALLV(MPI_Alltoallv, PMPI_Ialltoallv, int, int)
YW_ALLTOALLV(MPI_Alltoallv_c, PMPI_Ialltoallv_c, MPI_Count, MPI_Aint)
YW_ALLTOALLV(MPI_Neighbor_alltoallv, PMPI_Ineighbor_alltoallv, int, int)
YW_ALLTOALLV(MPI_Neighbor_alltoallv_c, PMPI_Ineighbor_alltoallv_c, MPI_Count, MPI_Aint)

#define YW_ALLTOALLW(NAME, INAME, C, SD)                                            \
    YW(NAME, INAME, (const void *s, const C scs[], const SD sdis[],                    \
       const MPI_Datatype sts[], void *d, const C rcs[], const SD rdis[],              \
       const MPI_Datatype rts[], MPI_Comm comm),                                       \
       (s, scs, sdis, sts, d, rcs, rdis, rts, comm, &r), NS)
YW_ALLTOALLW(MPI_Alltoallw, PMPI_Ialltoallw, int, int)
YW_ALLTOALLW(MPI_Alltoallw_c, PMPI_Ialltoallw_c, MPI_Count, MPI_Aint)
YW_ALLTOALLW(MPI_Neighbor_alltoallw, PMPI_Ineighbor_alltoallw, int, MPI_Aint)
YW_ALLTOALLW(MPI_Neighbor_alltoallw_c, PMPI_Ineighbor_alltoallw_c, MPI_Count, MPI_Aint)
