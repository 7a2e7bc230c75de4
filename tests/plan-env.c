/* plan-env: see plan-env.h. */
#include "plan-env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bandwidth.h"
#include "err.h"
#include "test.h"

const char *plan_env_cache(const char *sub)
{
    static char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", test_tmp_dir(), sub);
    mkdir(dir, 0755);
    if (setenv("HEARTH_CACHE_DIR", dir, 1) != 0 || bw_cache_path(path, sizeof path) != HEARTH_OK)
        return NULL;
    remove(path);
    return path;
}

bool plan_env_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

bool plan_env_reason(const struct plan *p, const char *a, const char *b)
{
    for (size_t i = 0; i < p->n_reasons; i++)
        if (strstr(p->reasons[i], a) && (!b || strstr(p->reasons[i], b)))
            return true;
    return false;
}

hearth_status plan_env_model(const char *file, struct gguf_file **gf, struct plan_model *pm)
{
    memset(pm, 0, sizeof *pm);
    *gf = NULL;
    const char *path = test_model_path(file);
    if (!path)
        return err_set(HEARTH_ERR_IO, "test model %s missing", file);
    hearth_status st = gguf_open(path, gf);
    if (st == HEARTH_OK)
        st = plan_model_from_gguf(*gf, pm);
    return st;
}

void plan_env_model_close(struct gguf_file *gf, struct plan_model *pm)
{
    plan_model_free(pm);
    if (gf)
        gguf_close(gf);
}
