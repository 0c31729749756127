# peer-pods in C: build, test, demo. Sources are found by wildcard, so a new file in a module's
# folder needs no change here. Programs: adaptor/, podvm/forwarder/, cli/ (each has main.c);
# everything else in those folders is also linked into the unit tests.

BUILD ?= build
CC ?= gcc
PREFIX ?= /usr/local
DESTDIR ?=
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# SAN=asan: AddressSanitizer+UBSan; SAN=fuzz: clang libFuzzer instrumentation.
SAN ?=
JOBS ?= $(shell nproc)
WERROR ?= -Werror

WARN := -Wall -Wextra $(WERROR) -Wformat=2 -Wshadow -Wstrict-prototypes -Wno-unused-parameter \
	-Wno-missing-field-initializers
CPPFLAGS += -D_GNU_SOURCE -Ulinux -DPP_VERSION='"$(VERSION)"' -Ilib -Iproviders -I$(BUILD)/gen -I. \
	-I/usr/include/libnl3 -I/usr/include/libxml2 \
	-MMD -MP
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu17 -fno-strict-aliasing -fstack-protector-strong
LDFLAGS += -Wl,--as-needed
LDLIBS += -lprotobuf-c -ljansson -lssl -lcrypto -lcurl -lvirt -lnl-route-3 -lnl-3 -lisofs -lyaml -lxml2 -lz \
	-lpthread

ifeq ($(SAN),asan)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SAN),fuzz)
CC := clang
CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -DFUZZING=1
LDFLAGS += -fsanitize=address,undefined
endif

# ---- sources ----
PROTOS := $(shell find proto -name '*.proto' | sort)
GEN_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_H := $(GEN_C:.c=.h)
LIB_SRC := $(sort $(wildcard lib/*/*.c))
PROVIDER_SRC := $(sort $(wildcard providers/*.c providers/*/*.c))
# Programs: folder:binary. Each folder has main.c; its other .c files go into libprog.a so the
# unit tests and fuzz targets can use them.
PROGRAMS := adaptor:cloud-api-adaptor podvm/forwarder:agent-protocol-forwarder \
	podvm/userdata:process-user-data podvm/attest:attestation-client cli:peerpodctl \
	coordinator:coordinator
PROG_DIRS := $(foreach p,$(PROGRAMS),$(firstword $(subst :, ,$(p))))
PROG_SRC := $(foreach d,$(PROG_DIRS),$(filter-out $(d)/main.c,$(sort $(wildcard $(d)/*.c))))
STANDIN_SRC := $(sort $(wildcard test/standin/*.c))
UNIT_SRC := $(sort $(wildcard test/unit/test-*.c))
FUZZ_SRC := $(sort $(wildcard test/fuzz/fuzz-*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ := $(call obj,$(LIB_SRC)) $(patsubst %.c,%.o,$(GEN_C))
PROGLIB_OBJ := $(call obj,$(PROG_SRC) $(PROVIDER_SRC))

PROG_BINS := $(foreach p,$(PROGRAMS),$(if $(wildcard $(firstword $(subst :, ,$(p)))/main.c),$(BUILD)/bin/$(lastword $(subst :, ,$(p)))))
BINS := $(PROG_BINS) $(BUILD)/bin/agent-standin $(BUILD)/bin/pp-bench
UNIT_BINS := $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRC))
FUZZ_BINS := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))

.PHONY: podvm-image all deps test unit unit-asan fuzz fuzz-build fuzz-replay bench lint format install \
	demo clean interop cloud k8s e2e
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BINS) $(UNIT_BINS)

# ---- generated protobuf code ----
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c | $(GEN_H)
	$(CC) $(CPPFLAGS) $(CFLAGS) -w -c -o $@ $<

# ---- objects ----
$(BUILD)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(BUILD)/libpp.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libprog.a: $(PROGLIB_OBJ)
	@rm -f $@
	ar rcs $@ $^ $(if $(PROGLIB_OBJ),,/dev/null)

LIBS := $(BUILD)/libprog.a $(BUILD)/libpp.a

# ---- programs ----
define program_rule
$(BUILD)/bin/$(2): $(call obj,$(1)/main.c) $$(LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$< $$(LIBS) $$(LDLIBS)
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rule,$(firstword $(subst :, ,$(p))),$(lastword $(subst :, ,$(p))))))

$(BUILD)/bin/agent-standin: $(call obj,$(STANDIN_SRC)) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(STANDIN_SRC)) $(LIBS) $(LDLIBS)

$(BUILD)/bin/pp-bench: $(call obj,bench/pp-bench.c) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# ---- unit tests (cmocka) ----
$(BUILD)/test/%: $(BUILD)/obj/test/unit/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS) -lcmocka

unit: $(UNIT_BINS) $(BINS)
	@scripts/run-tests.sh unit $(BUILD)

unit-asan:
	@$(MAKE) --no-print-directory -s -j$(JOBS) BUILD=build/asan SAN=asan all
	@scripts/run-tests.sh unit build/asan

# ---- fuzzing (clang + libFuzzer) ----
$(BUILD)/fuzz/%: $(BUILD)/obj/test/fuzz/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIBS) $(LDLIBS)

fuzz-build:
	@$(MAKE) --no-print-directory -s -j$(JOBS) BUILD=build/fuzz SAN=fuzz $(patsubst test/fuzz/%.c,build/fuzz/fuzz/%,$(FUZZ_SRC))

fuzz-replay: fuzz-build
	@scripts/run-tests.sh fuzz-replay build/fuzz

FUZZ_SECONDS ?= 60
fuzz: fuzz-build
	@scripts/fuzz.sh build/fuzz $(FUZZ_SECONDS)

# ---- the README's commands ----
deps:
	@scripts/deps.sh

test:
	@scripts/deps.sh --check || scripts/deps.sh
	@$(MAKE) --no-print-directory -s -j$(JOBS) WERROR=-Werror all
	@scripts/test.sh

# The default: one pod on a real QEMU VM through libvirt; the local provider where that cannot
# run (not root, no network namespaces: the libvirt demo exits 77 then).
demo:
	@scripts/deps.sh --check || scripts/deps.sh
	@$(MAKE) --no-print-directory -s -j$(JOBS) all podvm-image
	@scripts/demo-libvirt.sh $(BUILD); rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "demo: falling back to the local provider"; \
		scripts/demo.sh $(BUILD); else exit $$rc; fi

interop: all
	@scripts/run-tests.sh interop $(BUILD)

# Cloud providers against local ARM and EC2 mocks that check requests with the official SDKs.
cloud: all
	@scripts/run-tests.sh cloud $(BUILD)

# install/ manifests and the adaptor against a local Kubernetes API mock.
k8s: all
	@scripts/run-tests.sh k8s $(BUILD)

# The pod VM image (podvm/README.md): kernel + busybox initramfs with our binaries, cached.
podvm-image: $(BUILD)/bin/agent-protocol-forwarder $(BUILD)/bin/process-user-data \
		$(BUILD)/bin/attestation-client $(BUILD)/bin/agent-standin
	@$(MAKE) --no-print-directory -C podvm image tools BUILD=$(abspath $(BUILD))

e2e: all podvm-image
	@scripts/run-tests.sh e2e $(BUILD)

bench: all podvm-image
	@bench/run.sh $(BUILD)
	@bash bench/attest.sh $(BUILD) || [ $$? -eq 77 ]
	@bash bench/libvirt.sh $(BUILD) || [ $$? -eq 77 ]
	@bash bench/azure.sh $(BUILD) || [ $$? -eq 77 ]
	@bash bench/aws.sh $(BUILD) || [ $$? -eq 77 ]
	@bash bench/coordinator.sh $(BUILD) || [ $$? -eq 77 ]

lint:
	@scripts/lint.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

install: $(PROG_BINS)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $^ $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(BUILD)/gen -name '*.d' 2>/dev/null)
