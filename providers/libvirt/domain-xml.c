/* providers/libvirt: the domain XML of a pod VM (plain, SEV-SNP or TDX), built from resolved
 * parameters so that it can be validated against libvirt's schema in the unit test. */
#include "libvirt-internal.h"

/* SEV-SNP: C-bit position and physical address reduction of current EPYC parts (Milan,
 * Genoa); policy bit 17 is reserved-must-be-one, bit 16 allows SMT. */
#define SNP_CBITPOS 51
#define SNP_REDUCED_PHYS_BITS 1
#define SNP_POLICY "0x00030000"
/* TDX: bit 28, SEPT_VE_DISABLE, as the Linux guest requires. */
#define TDX_POLICY "0x10000000"

static void put_escaped(struct buf *b, const char *s, int *r)
{
	for (; s && *s && *r >= 0; s++) {
		switch (*s) {
		case '&':
			*r = buf_printf(b, "&amp;");
			break;
		case '<':
			*r = buf_printf(b, "&lt;");
			break;
		case '>':
			*r = buf_printf(b, "&gt;");
			break;
		case '\'':
			*r = buf_printf(b, "&apos;");
			break;
		case '"':
			*r = buf_printf(b, "&quot;");
			break;
		default:
			*r = buf_append(b, s, 1, 0);
		}
	}
}

/* Literal template text; values go through put_tag so that each is escaped exactly once. */
static void put(struct buf *b, int *r, const char *text)
{
	if (*r >= 0)
		*r = buf_append(b, text, strlen(text), 0);
}

static void put_tag(struct buf *b, int *r, const char *open, const char *value, const char *close)
{
	put(b, r, open);
	put_escaped(b, value, r);
	put(b, r, close);
}

char *libvirt_domain_xml(const struct libvirt_domain_params *d)
{
	struct buf b = {0};
	int r = 0;
	bool cvm = d->launch != LIBVIRT_LAUNCH_NONE;
	/* Confidential guests see only encrypted memory: virtio must use the platform IOMMU
	 * (bounce buffers) and the balloon cannot work. */
	const char *iommu = cvm ? " iommu='on'" : "";
	char num[128];

	put_tag(&b, &r, "<domain type='", d->virt_type, "'>\n");
	put_tag(&b, &r, "  <name>", d->name, "</name>\n");
	if (d->metadata_xml && str_startswith(d->metadata_xml, "<instance")) {
		put(&b, &r,
		    "  <metadata>\n    <" LIBVIRT_METADATA_PREFIX
		    ":instance xmlns:" LIBVIRT_METADATA_PREFIX "='" LIBVIRT_METADATA_URI "'");
		/* already escaped by libvirt_metadata_format */
		put(&b, &r, d->metadata_xml + strlen("<instance"));
		put(&b, &r, "\n  </metadata>\n");
	}
	snprintf(num, sizeof(num), "  <memory unit='MiB'>%llu</memory>\n",
		 (unsigned long long)d->memory_mib);
	put(&b, &r, num);
	put(&b, &r, "  <vcpu placement='static'");
	if (!str_empty(d->cpuset))
		put_tag(&b, &r, " cpuset='", d->cpuset, "'");
	snprintf(num, sizeof(num), ">%u</vcpu>\n", d->vcpus);
	put(&b, &r, num);

	put(&b, &r, cvm ? "  <os firmware='efi'>\n" : "  <os>\n");
	put_tag(&b, &r, "    <type arch='x86_64' machine='", d->machine, "'>hvm</type>\n");
	if (cvm) {
		/* Firmware auto-selection: libvirt picks a descriptor that supports the requested
		 * launch security; confidential firmware is stateless (no NVRAM to tamper with)
		 * and carries no Secure Boot keys. */
		put(&b, &r,
		    "    <firmware>\n"
		    "      <feature enabled='no' name='enrolled-keys'/>\n"
		    "      <feature enabled='no' name='secure-boot'/>\n"
		    "    </firmware>\n"
		    "    <loader stateless='yes'/>\n");
	} else if (!str_empty(d->firmware) && str_empty(d->kernel)) {
		/* With direct kernel boot, SeaBIOS hands over to the kernel at once; under TCG
		 * OVMF would cost seconds for nothing. */
		put_tag(&b, &r, "    <loader readonly='yes' type='pflash'>", d->firmware,
			"</loader>\n");
	}
	if (!str_empty(d->kernel)) {
		put_tag(&b, &r, "    <kernel>", d->kernel, "</kernel>\n");
		if (!str_empty(d->initrd))
			put_tag(&b, &r, "    <initrd>", d->initrd, "</initrd>\n");
		if (!str_empty(d->cmdline))
			put_tag(&b, &r, "    <cmdline>", d->cmdline, "</cmdline>\n");
	} else
		put(&b, &r, "    <boot dev='hd'/>\n");
	put(&b, &r, "  </os>\n  <features>\n    <acpi/>\n    <apic/>\n");
	if (d->launch == LIBVIRT_LAUNCH_TDX)
		/* TDX guests need the split irqchip and no SMM */
		put(&b, &r, "    <ioapic driver='qemu'/>\n    <smm state='off'/>\n");
	put(&b, &r, "  </features>\n");
	if (str_eq(d->virt_type, "kvm"))
		put(&b, &r, "  <cpu mode='host-passthrough'/>\n");
	put(&b, &r,
	    "  <clock offset='utc'/>\n"
	    "  <on_poweroff>destroy</on_poweroff>\n"
	    "  <on_reboot>restart</on_reboot>\n"
	    "  <on_crash>destroy</on_crash>\n"
	    "  <devices>\n");

	put(&b, &r, "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'");
	put(&b, &r, iommu);
	put_tag(&b, &r, "/>\n      <source file='", d->root_path,
		"'/>\n      <target dev='vda' bus='virtio'/>\n    </disk>\n");
	/* q35 has no IDE, and cloud kernels (Debian's among them) have no AHCI driver: the
	 * cidata CD-ROM goes on a virtio-scsi controller, which every cloud kernel carries */
	put(&b, &r, "    <controller type='scsi' model='virtio-scsi'");
	if (cvm)
		put(&b, &r, ">\n      <driver iommu='on'/>\n    </controller>\n");
	else
		put(&b, &r, "/>\n");
	put_tag(&b, &r,
		"    <disk type='file' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n"
		"      <source file='",
		d->cidata_path,
		"'/>\n      <target dev='sda' bus='scsi'/>\n      <readonly/>\n    </disk>\n");
	put_tag(&b, &r, "    <interface type='network'>\n      <mac address='", d->mac, "'/>\n");
	put_tag(&b, &r, "      <source network='", d->network,
		"'/>\n      <model type='virtio'/>\n");
	if (cvm)
		put(&b, &r, "      <driver iommu='on'/>\n");
	put(&b, &r, "    </interface>\n    <serial type='pty'>\n");
	if (!str_empty(d->console_log))
		put_tag(&b, &r, "      <log file='", d->console_log, "' append='off'/>\n");
	put(&b, &r,
	    "      <target port='0'/>\n    </serial>\n"
	    "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n"
	    "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n");
	if (cvm)
		put(&b, &r, "      <driver iommu='on'/>\n");
	put(&b, &r, "    </rng>\n    <memballoon model='none'/>\n  </devices>\n");

	if (d->launch == LIBVIRT_LAUNCH_SEV_SNP) {
		/* kernelHashes: with direct kernel boot the firmware measures kernel, initrd and
		 * command line into the launch digest */
		put(&b, &r, "  <launchSecurity type='sev-snp'");
		if (!str_empty(d->kernel))
			put(&b, &r, " kernelHashes='yes'");
		snprintf(
		    num, sizeof(num),
		    ">\n    <cbitpos>%d</cbitpos>\n    <reducedPhysBits>%d</reducedPhysBits>\n",
		    SNP_CBITPOS, SNP_REDUCED_PHYS_BITS);
		put(&b, &r, num);
		put(&b, &r, "    <policy>" SNP_POLICY "</policy>\n  </launchSecurity>\n");
	} else if (d->launch == LIBVIRT_LAUNCH_TDX) {
		put(&b, &r,
		    "  <launchSecurity type='tdx'>\n    <policy>" TDX_POLICY
		    "</policy>\n  </launchSecurity>\n");
	}
	put(&b, &r, "</domain>\n");
	if (r >= 0)
		r = buf_append(&b, "", 1, 0);
	if (r < 0) {
		buf_done(&b);
		return NULL;
	}
	return (char *)b.data;
}
