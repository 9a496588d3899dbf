/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel has no <stdint.h>. The repo's include/smmu_hyp.h, shared with
 * EL1 clients that have one, needs only the fixed-width integer types,
 * which <linux/types.h> defines. module.sh puts this directory on the
 * include path of the repo's modules.
 */
#ifndef SMMU_HYP_LINUX_STDINT_H
#define SMMU_HYP_LINUX_STDINT_H
#include <linux/types.h>
#endif
