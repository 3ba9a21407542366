/*
 * Symbol lookup in the vDSO image the kernel maps into every process
 * (auxv AT_SYSINFO_EHDR). Handles DT_HASH and DT_GNU_HASH, versioned or not.
 * Runs once per process image, from the constructor.
 */
#include "lp.h"

typedef struct {
    unsigned char e_ident[16];
    lp_u16 e_type, e_machine;
    lp_u32 e_version;
    lp_u64 e_entry, e_phoff, e_shoff;
    lp_u32 e_flags;
    lp_u16 e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
} lp_ehdr;

typedef struct {
    lp_u32 p_type, p_flags;
    lp_u64 p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
} lp_phdr;

typedef struct {
    long long d_tag;
    lp_u64 d_val;
} lp_dyn;

typedef struct {
    lp_u32 st_name;
    unsigned char st_info, st_other;
    lp_u16 st_shndx;
    lp_u64 st_value, st_size;
} lp_sym;

typedef struct {
    lp_u16 vd_version, vd_flags, vd_ndx, vd_cnt;
    lp_u32 vd_hash, vd_aux, vd_next;
} lp_verdef;

typedef struct {
    lp_u32 vda_name, vda_next;
} lp_verdaux;

#define PT_LOAD 1
#define PT_DYNAMIC 2
#define DT_NULL 0
#define DT_HASH 4
#define DT_STRTAB 5
#define DT_SYMTAB 6
#define DT_GNU_HASH 0x6ffffef5
#define DT_VERSYM 0x6ffffff0
#define DT_VERDEF 0x6ffffffc
#define STT_FUNC 2
#define STT_NOTYPE 0
#define STB_GLOBAL 1
#define STB_WEAK 2
#define SHN_UNDEF 0
#define VER_FLG_BASE 1

#define LP_VDSO_MAX_SYMS 4096 /* sanity bound: real vDSOs have a few dozen */

/* Number of dynamic symbols described by a GNU hash table. */
static lp_u32 gnu_hash_nsyms(const lp_u32 *h)
{
    lp_u32 nbuckets = h[0], symoffset = h[1], bloom_size = h[2];
    const lp_u32 *buckets = (const lp_u32 *)((const lp_u64 *)(h + 4) + bloom_size);
    const lp_u32 *chain = buckets + nbuckets;
    lp_u32 last = 0;
    for (lp_u32 i = 0; i < nbuckets; i++)
        if (buckets[i] > last) last = buckets[i];
    if (last < symoffset) return symoffset;
    while (last - symoffset < LP_VDSO_MAX_SYMS && !(chain[last - symoffset] & 1)) last++;
    return last + 1;
}

void *lp_vdso_sym(const void *base, const char *name, const char *version)
{
    if (!base) return 0;
    const lp_ehdr *eh = (const lp_ehdr *)base;
    if (eh->e_ident[0] != 0x7f || eh->e_ident[1] != 'E' || eh->e_ident[2] != 'L' ||
        eh->e_ident[3] != 'F' || eh->e_ident[4] != 2 /* ELFCLASS64 */)
        return 0;

    const lp_phdr *ph = (const lp_phdr *)((const char *)base + eh->e_phoff);
    lp_uptr load_offset = 0;
    int have_load = 0;
    const lp_dyn *dyn = 0;
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !have_load) {
            load_offset = (lp_uptr)base + ph[i].p_offset - ph[i].p_vaddr;
            have_load = 1;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (const lp_dyn *)((const char *)base + ph[i].p_offset);
        }
    }
    if (!have_load || !dyn) return 0;

    const lp_sym *symtab = 0;
    const char *strtab = 0;
    const lp_u32 *hash = 0, *gnu_hash = 0;
    const lp_u16 *versym = 0;
    const lp_verdef *verdef = 0;
    for (const lp_dyn *d = dyn; d->d_tag != DT_NULL; d++) {
        lp_uptr p = load_offset + d->d_val;
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = (const lp_sym *)p; break;
        case DT_STRTAB: strtab = (const char *)p; break;
        case DT_HASH: hash = (const lp_u32 *)p; break;
        case DT_GNU_HASH: gnu_hash = (const lp_u32 *)p; break;
        case DT_VERSYM: versym = (const lp_u16 *)p; break;
        case DT_VERDEF: verdef = (const lp_verdef *)p; break;
        default: break;
        }
    }
    if (!symtab || !strtab || (!hash && !gnu_hash)) return 0;
    if (!verdef) versym = 0;

    lp_u32 nsyms = hash ? hash[1] : gnu_hash_nsyms(gnu_hash);
    if (nsyms > LP_VDSO_MAX_SYMS) nsyms = LP_VDSO_MAX_SYMS;

    for (lp_u32 i = 1; i < nsyms; i++) {
        const lp_sym *s = &symtab[i];
        unsigned type = s->st_info & 0xf, bind = s->st_info >> 4;
        if (type != STT_FUNC && type != STT_NOTYPE) continue;
        if (bind != STB_GLOBAL && bind != STB_WEAK) continue;
        if (s->st_shndx == SHN_UNDEF || s->st_value == 0) continue;
        if (!lp_streq(strtab + s->st_name, name)) continue;
        if (versym && version) {
            lp_u16 ndx = versym[i] & 0x7fff;
            const lp_verdef *vd = verdef;
            int ok = 0;
            for (int guard = 0; guard < 256; guard++) {
                if (!(vd->vd_flags & VER_FLG_BASE) && vd->vd_ndx == ndx) {
                    const lp_verdaux *aux = (const lp_verdaux *)((const char *)vd + vd->vd_aux);
                    ok = lp_streq(strtab + aux->vda_name, version);
                    break;
                }
                if (!vd->vd_next) break;
                vd = (const lp_verdef *)((const char *)vd + vd->vd_next);
            }
            if (!ok) continue;
        }
        return (void *)(load_offset + s->st_value);
    }
    return 0;
}
