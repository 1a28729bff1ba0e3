/* The CPUs a file's disk completes on (diskcpu.h): from the file's device
 * (/sys/dev/block/MAJ:MIN, a partition's parent), up to the PCI function holding its
 * msi_irqs, then each interrupt's /proc/irq/N/effective_affinity_list. */
#include "engine/dst/diskcpu.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* "0-3,5" into set; FALSE on anything else */
static gboolean parse_cpu_list(const char *s, cpu_set_t *set)
{
	while (*s && *s != '\n') {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;

		if (end == s)
			return FALSE;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s || b < a)
				return FALSE;
		}
		for (unsigned long c = a; c <= b && c < CPU_SETSIZE; c++)
			CPU_SET(c, set);
		s = end;
		if (*s == ',')
			s++;
	}
	return TRUE;
}

/* The sysfs directory of the whole disk the file is on, or NULL. */
static char *disk_dir(int fd)
{
	struct stat st;
	g_autofree char *link = NULL, *real = NULL, *part = NULL;

	if (fstat(fd, &st) < 0)
		return NULL;
	link = g_strdup_printf("/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	if (!(real = realpath(link, NULL)))
		return NULL;
	part = g_build_filename(real, "partition", NULL);
	if (g_file_test(part, G_FILE_TEST_EXISTS))
		return g_path_get_dirname(real);
	return g_steal_pointer(&real);
}

/* One hardware queue: its completions cannot follow the submitting CPU. */
static gboolean single_queue(const char *disk)
{
	g_autofree char *mq = g_build_filename(disk, "mq", NULL);
	g_autoptr(GDir) d = g_dir_open(mq, 0, NULL);
	guint n = 0;

	if (!d)
		return FALSE;
	while (g_dir_read_name(d))
		n++;
	return n == 1;
}

gboolean mig_disk_irq_cpus(int fd, const cpu_set_t *allowed, cpu_set_t *set)
{
	g_autofree char *disk = disk_dir(fd), *dev = NULL;
	g_autoptr(GDir) irqs = NULL;
	cpu_set_t cpus, both;
	const char *name;
	guint found = 0;

	if (!disk || !single_queue(disk))
		return FALSE;
	{
		g_autofree char *link = g_build_filename(disk, "device", NULL);

		dev = realpath(link, NULL);
	}
	/* a virtio disk's device is the virtio bus's child of the PCI function; an AHCI
	 * or SCSI disk's sits a few levels below its controller's */
	for (guint up = 0; dev && up < 6 && !irqs; up++) {
		g_autofree char *msi = g_build_filename(dev, "msi_irqs", NULL);
		char *parent;

		if ((irqs = g_dir_open(msi, 0, NULL)))
			break;
		parent = g_path_get_dirname(dev);
		g_free(dev);
		dev = parent;
	}
	if (!irqs)
		return FALSE;
	CPU_ZERO(&cpus);
	while ((name = g_dir_read_name(irqs))) {
		g_autofree char *path = g_strdup_printf("/proc/irq/%s/effective_affinity_list", name), *text = NULL;

		if (!g_file_get_contents(path, &text, NULL, NULL) || !parse_cpu_list(text, &cpus))
			return FALSE;
		found++;
	}
	CPU_AND(&both, &cpus, allowed);
	if (!found || !CPU_COUNT(&both) || CPU_EQUAL(&both, allowed))
		return FALSE;
	*set = both;
	return TRUE;
}
