# vos-fastpath: build the XDP object. It needs no header of this kernel
# (bpf/fp_kernel.h), so the same clang makes the same object anywhere.
BPF_DIR    ?= bpf
OUT_DIR    ?= build
SIP_PROG   ?= $(OUT_DIR)/sip_logic.bpf.o
CLANG      ?= clang

BPF_CFLAGS := -target bpf -O2 -mcpu=v3 -g \
	-I $(BPF_DIR) -I /usr/include \
	-Wall -Wno-unused -Wno-pointer-sign

BPF_HEADERS := $(wildcard $(BPF_DIR)/*.h)

.PHONY: all clean test

all: $(SIP_PROG)

$(OUT_DIR):
	@mkdir -p $@

$(SIP_PROG): $(BPF_DIR)/sip_logic.bpf.c $(BPF_HEADERS) | $(OUT_DIR)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

test: $(SIP_PROG)
	./scripts/test.sh

clean:
	rm -rf $(OUT_DIR)
