/* A destination half without a listener, for tests that drive one of its parts
 * (receivers, device lane) directly: what the listener sets up when it admits a main
 * channel, with the session's parameters as that migration's snapshot. */
#pragma once
#include "engine/dst/dst_int.h"

static inline Dst *test_dst_new(MigSession *s)
{
	Dst *d = mig_dst_new(s);

	mig_params_copy(&d->p, &s->params);
	d->incoming_started = TRUE;   /* the snapshot is freed with the Dst */
	s->dst = d;
	return d;
}
