/*
 * backend-registry: the only file in core/ with HEARTH_WITH_CUDA and
 * HEARTH_WITH_VULKAN conditionals (see backend-registry.h).
 *
 * A GPU backend registers by defining its *_backend_ops() function; a backend
 * whose ops table returns NULL falls back to its probe function, which only
 * lists devices (a backend that can describe but not yet open them).
 */
#include "backend-registry.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

#ifdef HEARTH_WITH_CUDA
const struct hearth_backend_ops *cuda_backend_ops(void);
int cuda_probe_devices(struct reg_device_info *out, int max);
#endif
#ifdef HEARTH_WITH_VULKAN
const struct hearth_backend_ops *vk_backend_ops(void);
int vk_probe_devices(struct reg_device_info *out, int max);
#endif

typedef int (*reg_probe_fn)(struct reg_device_info *out, int max);

struct reg_entry {
    const char *name;
    const struct hearth_backend_ops *(*ops)(void); /* NULL: not (yet) registered */
    reg_probe_fn probe;                            /* legacy listing, NULL: none */
};

/* The compiled-in backends in listing order; returns how many. */
static int entries(struct reg_entry *e)
{
    int n = 0;
    e[n++] = (struct reg_entry){"cpu", cpu_backend_ops, NULL};
#ifdef HEARTH_WITH_CUDA
    e[n++] = (struct reg_entry){"cuda", cuda_backend_ops, cuda_probe_devices};
#endif
#ifdef HEARTH_WITH_VULKAN
    e[n++] = (struct reg_entry){"vulkan", vk_backend_ops, vk_probe_devices};
#endif
    return n;
}

bool reg_is_software_device(const char *desc)
{
    static const char *const soft[] = {"llvmpipe", "lavapipe", "SwiftShader", "softpipe"};
    for (size_t i = 0; desc && i < sizeof soft / sizeof soft[0]; i++)
        if (strstr(desc, soft[i]))
            return true;
    return false;
}

const char *reg_backends_built(void)
{
    return "cpu"
#ifdef HEARTH_WITH_CUDA
           " cuda"
#endif
#ifdef HEARTH_WITH_VULKAN
           " vulkan"
#endif
        ;
}

int reg_backends(const struct hearth_backend_ops **out, int max)
{
    struct reg_entry e[3];
    int ne = entries(e), n = 0;
    for (int i = 0; i < ne; i++) {
        const struct hearth_backend_ops *ops = e[i].ops ? e[i].ops() : NULL;
        if (!ops)
            continue;
        if (n < max)
            out[n] = ops;
        n++;
    }
    return n;
}

static void info_from_props(struct reg_device_info *o, const struct hearth_device_props *p)
{
    memset(o, 0, sizeof *o);
    memcpy(o->name, p->name, sizeof o->name);
    o->name[sizeof o->name - 1] = '\0';
    memcpy(o->desc, p->desc, sizeof o->desc);
    o->desc[sizeof o->desc - 1] = '\0';
    o->total_bytes = p->total_bytes;
    o->free_bytes = p->free_bytes;
    o->bw_gbps = p->bw_gbps;
    o->host_staging_bytes = p->host_staging_bytes;
    o->max_buffer_bytes = p->max_buffer_bytes;
}

int reg_list_devices(struct reg_device_info *out, int max)
{
    struct reg_entry e[3];
    int ne = entries(e), n = 0;
    for (int i = 0; i < ne; i++) {
        const struct hearth_backend_ops *ops = e[i].ops ? e[i].ops() : NULL;
        if (ops) {
            int c = ops->device_count();
            for (int k = 0; k < c; k++, n++) {
                struct hearth_device_props p;
                memset(&p, 0, sizeof p);
                if (n < max && ops->device_describe(k, &p) == HEARTH_OK)
                    info_from_props(&out[n], &p);
                else if (n < max) {
                    memset(&out[n], 0, sizeof out[n]);
                    snprintf(out[n].name, sizeof out[n].name, "%s%d", e[i].name, k);
                }
            }
        } else if (e[i].probe) {
            int c = e[i].probe(out + (n < max ? n : max), n < max ? max - n : 0);
            for (int k = n; k < n + c && k < max; k++)
                out[k].bw_gbps = 0.0;
            n += c;
        }
    }
    return n;
}

hearth_status reg_device_open(const char *name, struct hearth_device **out)
{
    *out = NULL;
    if (!name)
        return err_set(HEARTH_ERR_INVALID_ARG, "device: no name given");
    struct reg_entry e[3];
    int ne = entries(e);
    char avail[256] = "";
    size_t used = 0;
    for (int i = 0; i < ne; i++) {
        const struct hearth_backend_ops *ops = e[i].ops ? e[i].ops() : NULL;
        if (!ops) {
            if (!strncmp(name, e[i].name, strlen(e[i].name)))
                return err_set(HEARTH_ERR_UNSUPPORTED,
                               "device %s: the %s backend lists devices but cannot open them yet",
                               name, e[i].name);
            continue;
        }
        int c = ops->device_count();
        for (int k = 0; k < c; k++) {
            struct hearth_device_props p;
            memset(&p, 0, sizeof p);
            if (ops->device_describe(k, &p) != HEARTH_OK)
                continue;
            if (!strcmp(p.name, name))
                return ops->device_open(k, out);
            int w = snprintf(avail + used, sizeof avail - used, "%s%s", used ? ", " : "", p.name);
            if (w > 0 && (size_t)w < sizeof avail - used)
                used += (size_t)w;
        }
    }
    return err_set(HEARTH_ERR_NOT_FOUND,
                   "device \"%s\" not found; this build and machine offer: %s", name,
                   used ? avail : "(none)");
}
