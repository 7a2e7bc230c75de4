/* cpu/backend-rows: the CPU backend's per-token ops (see backend-rows.h). */
#include "cpu/backend-rows.h"

#include <string.h>

#include "cpu/rows.h"
#include "err.h"
#include "quant.h"

struct embed_job {
    const struct hearth_op_embed *e;
    struct model_weight table;
    const uint8_t *ids;
};

/* ids may be one row of n or n rows of one */
static int32_t embed_id(const struct embed_job *j, int t)
{
    int32_t id;
    memcpy(&id, j->e->ids.n_rows == 1 ? j->ids + (size_t)t * 4 : cpu_trow(&j->e->ids, t), 4);
    return id;
}

static void row_embed(void *arg, int t)
{
    const struct embed_job *j = arg;
    float *o = cpu_frow(&j->e->out, t);
    model_weight_row(&j->table, embed_id(j, t), o); /* ids checked by cpu_op_embed */
    if (j->e->scale != 1.0f)
        for (int64_t i = 0; i < j->e->out.ne0; i++)
            o[i] *= j->e->scale;
}

hearth_status cpu_op_embed(struct threadpool *tp, const struct hearth_op_embed *e, int n)
{
    const struct quant_traits *qt = quant_get(e->table.type);
    if (!qt || !qt->to_float || e->ids.type != HEARTH_DTYPE_I32)
        return err_set(HEARTH_ERR_UNSUPPORTED, "cpu: embed: table type %s, ids type %s",
                       hearth_dtype_name(e->table.type), hearth_dtype_name(e->ids.type));
    struct embed_job j = {.e = e, .table = cpu_as_weight(&e->table), .ids = cpu_trow(&e->ids, 0)};
    for (int t = 0; t < n; t++) {
        int32_t id = embed_id(&j, t);
        if (!j.table.data || id < 0 || id >= j.table.n_out)
            return err_set(HEARTH_ERR_INVALID_ARG, "cpu: embed: token %d: id %d outside [0, %lld)",
                           t, (int)id, (long long)j.table.n_out);
    }
    cpu_rows_for(tp, n, e->out.ne0, row_embed, &j);
    return HEARTH_OK;
}

static void row_rmsnorm(void *arg, int t)
{
    const struct hearth_op_rmsnorm *r = arg;
    cpu_rmsnorm(cpu_frow(&r->y, t), cpu_frow(&r->x, t), r->w.buf ? cpu_frow(&r->w, 0) : NULL,
                r->x.ne0, r->eps);
}

void cpu_op_rmsnorm(struct threadpool *tp, const struct hearth_op_rmsnorm *r, int n)
{
    cpu_rows_for(tp, n, r->x.ne0, row_rmsnorm, (void *)r);
}

struct glu_job {
    const struct hearth_op_glu *g;
    cpu_glu_fn f; /* the kernel for g->act */
};

static void row_glu(void *arg, int t)
{
    const struct glu_job *j = arg;
    j->f(cpu_frow(&j->g->g, t), cpu_frow(&j->g->u, t), j->g->g.ne0);
}

void cpu_op_glu(struct threadpool *tp, const struct cpu_glu_kernels *k,
                const struct hearth_op_glu *g, int n)
{
    struct glu_job j = {g, g->act == HEARTH_GLU_GELU_TANH ? k->gelu_tanh : k->silu};
    cpu_rows_for(tp, n, g->g.ne0, row_glu, &j);
}

static void row_add(void *arg, int t)
{
    const struct hearth_op_add *a = arg;
    float *y = cpu_frow(&a->y, t);
    if (a->w.buf)
        cpu_rmsnorm(y, y, cpu_frow(&a->w, 0), a->y.ne0, a->eps);
    cpu_add(cpu_frow(&a->x, t), y, a->x.ne0);
}

void cpu_op_add(struct threadpool *tp, const struct hearth_op_add *a, int n)
{
    cpu_rows_for(tp, n, 2 * a->x.ne0, row_add, (void *)a);
}
