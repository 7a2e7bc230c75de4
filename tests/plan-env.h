/*
 * plan-env: what the planner's tests share: a private device cache per case,
 * a test model's plan description, and a search of a plan's reasons.
 */
#ifndef HEARTH_TEST_PLAN_ENV_H
#define HEARTH_TEST_PLAN_ENV_H

#include <stdbool.h>

#include "gguf.h"
#include "plan.h"

/*
 * Points HEARTH_CACHE_DIR at a fresh subdirectory sub of the test's temporary
 * directory and returns the cache file's path there (removed); NULL on failure.
 */
const char *plan_env_cache(const char *sub);
/* Writes text to path; false when it cannot. */
bool plan_env_write(const char *path, const char *text);
/* Whether some reason of p contains a (and b, when not NULL). */
bool plan_env_reason(const struct plan *p, const char *a, const char *b);
/* Opens test model file (TEST_SMOLLM2, ...) and describes it into *pm. */
hearth_status plan_env_model(const char *file, struct gguf_file **gf, struct plan_model *pm);
void plan_env_model_close(struct gguf_file *gf, struct plan_model *pm);

#endif
