/* providers/libvirt/virt-dl.h: the libvirt functions the provider calls, resolved with dlopen when
 * the provider starts. An adaptor running another provider then never maps libvirt and the
 * libraries it pulls in (gnutls, glib, ICU, libstdc++...: several MiB of resident memory). Only
 * libvirt.c includes this; it calls the functions by their usual names. */
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

struct virt_api {
	__typeof__(&virConnSetErrorFunc) virConnSetErrorFunc;
	__typeof__(&virConnectClose) virConnectClose;
	__typeof__(&virConnectGetCapabilities) virConnectGetCapabilities;
	__typeof__(&virConnectIsAlive) virConnectIsAlive;
	__typeof__(&virConnectListAllDomains) virConnectListAllDomains;
	__typeof__(&virConnectOpen) virConnectOpen;
	__typeof__(&virConnectRef) virConnectRef;
	__typeof__(&virDomainCreate) virDomainCreate;
	__typeof__(&virDomainDefineXML) virDomainDefineXML;
	__typeof__(&virDomainDestroy) virDomainDestroy;
	__typeof__(&virDomainFree) virDomainFree;
	__typeof__(&virDomainGetMetadata) virDomainGetMetadata;
	__typeof__(&virDomainGetName) virDomainGetName;
	__typeof__(&virDomainGetUUIDString) virDomainGetUUIDString;
	__typeof__(&virDomainIsActive) virDomainIsActive;
	__typeof__(&virDomainLookupByName) virDomainLookupByName;
	__typeof__(&virDomainLookupByUUIDString) virDomainLookupByUUIDString;
	__typeof__(&virDomainUndefineFlags) virDomainUndefineFlags;
	__typeof__(&virGetLastError) virGetLastError;
	__typeof__(&virInitialize) virInitialize;
	__typeof__(&virNetworkDHCPLeaseFree) virNetworkDHCPLeaseFree;
	__typeof__(&virNetworkGetDHCPLeases) virNetworkGetDHCPLeases;
	__typeof__(&virNetworkLookupByName) virNetworkLookupByName;
	__typeof__(&virSetErrorFunc) virSetErrorFunc;
	__typeof__(&virStoragePoolLookupByName) virStoragePoolLookupByName;
	__typeof__(&virStorageVolCreateXML) virStorageVolCreateXML;
	__typeof__(&virStorageVolDelete) virStorageVolDelete;
	__typeof__(&virStorageVolGetInfo) virStorageVolGetInfo;
	__typeof__(&virStorageVolGetPath) virStorageVolGetPath;
	__typeof__(&virStorageVolGetXMLDesc) virStorageVolGetXMLDesc;
	__typeof__(&virStorageVolLookupByName) virStorageVolLookupByName;
	__typeof__(&virStorageVolLookupByPath) virStorageVolLookupByPath;
	__typeof__(&virStorageVolUpload) virStorageVolUpload;
	__typeof__(&virStreamAbort) virStreamAbort;
	__typeof__(&virStreamFinish) virStreamFinish;
	__typeof__(&virStreamNew) virStreamNew;
	__typeof__(&virStreamSend) virStreamSend;
	__typeof__(&virNetworkFree) virNetworkFree;
	__typeof__(&virStoragePoolFree) virStoragePoolFree;
	__typeof__(&virStorageVolFree) virStorageVolFree;
	__typeof__(&virStreamFree) virStreamFree;
};
extern struct virt_api virt_api;

/* Load libvirt.so.0 and resolve every function (once; thread-safe). 0, or -ENOENT with
 * *ret_msg (malloc'd) naming what is missing. */
int virt_api_load(char **ret_msg);

#ifndef VIRT_DL_NO_MACROS
#define virConnSetErrorFunc virt_api.virConnSetErrorFunc
#define virConnectClose virt_api.virConnectClose
#define virConnectGetCapabilities virt_api.virConnectGetCapabilities
#define virConnectIsAlive virt_api.virConnectIsAlive
#define virConnectListAllDomains virt_api.virConnectListAllDomains
#define virConnectOpen virt_api.virConnectOpen
#define virConnectRef virt_api.virConnectRef
#define virDomainCreate virt_api.virDomainCreate
#define virDomainDefineXML virt_api.virDomainDefineXML
#define virDomainDestroy virt_api.virDomainDestroy
#define virDomainFree virt_api.virDomainFree
#define virDomainGetMetadata virt_api.virDomainGetMetadata
#define virDomainGetName virt_api.virDomainGetName
#define virDomainGetUUIDString virt_api.virDomainGetUUIDString
#define virDomainIsActive virt_api.virDomainIsActive
#define virDomainLookupByName virt_api.virDomainLookupByName
#define virDomainLookupByUUIDString virt_api.virDomainLookupByUUIDString
#define virDomainUndefineFlags virt_api.virDomainUndefineFlags
#define virGetLastError virt_api.virGetLastError
#define virInitialize virt_api.virInitialize
#define virNetworkDHCPLeaseFree virt_api.virNetworkDHCPLeaseFree
#define virNetworkGetDHCPLeases virt_api.virNetworkGetDHCPLeases
#define virNetworkLookupByName virt_api.virNetworkLookupByName
#define virSetErrorFunc virt_api.virSetErrorFunc
#define virStoragePoolLookupByName virt_api.virStoragePoolLookupByName
#define virStorageVolCreateXML virt_api.virStorageVolCreateXML
#define virStorageVolDelete virt_api.virStorageVolDelete
#define virStorageVolGetInfo virt_api.virStorageVolGetInfo
#define virStorageVolGetPath virt_api.virStorageVolGetPath
#define virStorageVolGetXMLDesc virt_api.virStorageVolGetXMLDesc
#define virStorageVolLookupByName virt_api.virStorageVolLookupByName
#define virStorageVolLookupByPath virt_api.virStorageVolLookupByPath
#define virStorageVolUpload virt_api.virStorageVolUpload
#define virStreamAbort virt_api.virStreamAbort
#define virStreamFinish virt_api.virStreamFinish
#define virStreamNew virt_api.virStreamNew
#define virStreamSend virt_api.virStreamSend
#define virNetworkFree virt_api.virNetworkFree
#define virStoragePoolFree virt_api.virStoragePoolFree
#define virStorageVolFree virt_api.virStorageVolFree
#define virStreamFree virt_api.virStreamFree
#endif
