# vos-fastpath: build the XDP object with CO-RE against the running kernel.
BPF_DIR    ?= bpf
OUT_DIR    ?= build
VMLINUX_H  ?= $(OUT_DIR)/vmlinux.h
SIP_PROG   ?= $(OUT_DIR)/sip_logic.bpf.o
KERNEL_BTF ?= /sys/kernel/btf/vmlinux
CLANG      ?= clang
BPFTOOL    ?= $(shell command -v bpftool 2>/dev/null || { test -x /usr/sbin/bpftool && echo /usr/sbin/bpftool; })

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

BPF_CFLAGS := -target bpf -O2 -mcpu=v3 -g -D__TARGET_ARCH_$(ARCH) \
	-I $(OUT_DIR) -I $(BPF_DIR) -I /usr/include \
	-Wall -Wno-unused -Wno-pointer-sign

BPF_HEADERS := $(wildcard $(BPF_DIR)/*.h)

.PHONY: all clean test

all: $(VMLINUX_H) $(SIP_PROG)

$(OUT_DIR):
	@mkdir -p $@

$(VMLINUX_H): | $(OUT_DIR)
	@test -r "$(KERNEL_BTF)" || { \
		echo "ERROR: Kernel BTF not found at $(KERNEL_BTF): boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian 12+, Ubuntu 22.04+ and RHEL 9+ kernels have it)." >&2; \
		exit 1; }
	@test -n "$(BPFTOOL)" || { \
		echo "ERROR: bpftool not found: install it with 'apt install bpftool' (Debian), 'apt install linux-tools-$$(uname -r)' (Ubuntu) or 'dnf install bpftool' (RHEL)." >&2; \
		exit 1; }
	$(BPFTOOL) btf dump file $(KERNEL_BTF) format c > $@.tmp
	@mv $@.tmp $@

$(SIP_PROG): $(BPF_DIR)/sip_logic.bpf.c $(BPF_HEADERS) $(VMLINUX_H) | $(OUT_DIR)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

test: $(SIP_PROG)
	./scripts/test.sh

clean:
	rm -rf $(OUT_DIR)
