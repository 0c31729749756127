/* providers/libvirt/virt-dl.c: dlopen of libvirt for the provider (see virt-dl.h). */
#include <dlfcn.h>
#include <pthread.h>

#include "base/base.h"
/* here the names mean the real functions, whose addresses we look up */
#define VIRT_DL_NO_MACROS
#include "virt-dl.h"

#define LIBVIRT_SONAME "libvirt.so.0"

struct virt_api virt_api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char *load_error;

static void load(void)
{
	void *h = dlopen(LIBVIRT_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		load_error = str_printf("cannot load %s: %s", LIBVIRT_SONAME, dlerror());
		return;
	}
	struct virt_api api;
	/* dlsym returns void *; POSIX guarantees it converts to a function pointer */
#define RESOLVE(name)                                                                  \
	do {                                                                           \
		void *sym = dlsym(h, #name);                                           \
		if (!sym) {                                                            \
			load_error = str_printf("%s lacks %s", LIBVIRT_SONAME, #name); \
			return;                                                        \
		}                                                                      \
		memcpy(&api.name, &sym, sizeof(sym));                                  \
	} while (0)
	RESOLVE(virConnSetErrorFunc);
	RESOLVE(virConnectClose);
	RESOLVE(virConnectGetCapabilities);
	RESOLVE(virConnectIsAlive);
	RESOLVE(virConnectListAllDomains);
	RESOLVE(virConnectOpen);
	RESOLVE(virConnectRef);
	RESOLVE(virDomainCreate);
	RESOLVE(virDomainDefineXML);
	RESOLVE(virDomainDestroy);
	RESOLVE(virDomainFree);
	RESOLVE(virDomainGetMetadata);
	RESOLVE(virDomainGetName);
	RESOLVE(virDomainGetUUIDString);
	RESOLVE(virDomainIsActive);
	RESOLVE(virDomainLookupByName);
	RESOLVE(virDomainLookupByUUIDString);
	RESOLVE(virDomainUndefineFlags);
	RESOLVE(virGetLastError);
	RESOLVE(virInitialize);
	RESOLVE(virNetworkDHCPLeaseFree);
	RESOLVE(virNetworkGetDHCPLeases);
	RESOLVE(virNetworkLookupByName);
	RESOLVE(virSetErrorFunc);
	RESOLVE(virStoragePoolLookupByName);
	RESOLVE(virStorageVolCreateXML);
	RESOLVE(virStorageVolDelete);
	RESOLVE(virStorageVolGetInfo);
	RESOLVE(virStorageVolGetPath);
	RESOLVE(virStorageVolGetXMLDesc);
	RESOLVE(virStorageVolLookupByName);
	RESOLVE(virStorageVolLookupByPath);
	RESOLVE(virStorageVolUpload);
	RESOLVE(virStreamAbort);
	RESOLVE(virStreamFinish);
	RESOLVE(virStreamNew);
	RESOLVE(virStreamSend);
	RESOLVE(virNetworkFree);
	RESOLVE(virStoragePoolFree);
	RESOLVE(virStorageVolFree);
	RESOLVE(virStreamFree);
#undef RESOLVE
	virt_api = api;
	/* the handle stays open for the life of the process */
}

int virt_api_load(char **ret_msg)
{
	pthread_once(&load_once, load);
	if (!load_error)
		return 0;
	if (ret_msg)
		*ret_msg = strdup(load_error);
	return -ENOENT;
}
