/* libmig: live migration of a VM's memory and devices, embeddable in a VMM.
 * One include for the whole public API; link with `pkg-config --cflags --libs mig`. */
#pragma once
#include <mig/common.h>
#include <mig/value.h>
#include <mig/ram.h>
#include <mig/dirty.h>
#include <mig/device.h>
#include <mig/log.h>
#include <mig/config.h>
#include <mig/session.h>
#include <mig/object.h>
