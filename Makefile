# gohv build, test and run targets. `make help` lists them.
#
# Targets that need the TamaGo compiler (kernel, gen1, gen2, qemu*) find it
# with tools/scripts/tamago.sh: set TAMAGO=/path/to/tamago-go/bin/go, or
# install tamago-go where tamago's wrapper keeps it. Without it they print
# one line and skip; nothing here downloads a toolchain.

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 3s
BENCHTIME ?= 1s
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.0

GOOSPKG   := github.com/usbarmory/tamago
KERNEL_PKG ?= ./examples/hello
BUILD     ?= build
FORMAT    ?= vhdx
IMAGE_SIZE ?= 64MiB
TEXT_START ?= 0x02010000
IMAGE_EXT = $(if $(filter vhd,$(FORMAT)),vhd,$(if $(filter raw,$(FORMAT)),raw,vhdx))
LDFLAGS   := -T $(TEXT_START) -R 0x1000
# The board supplies its own PVH entry (cpuinit) and RAM start.
KERNEL_TAGS := linkcpuinit,linkramstart
QEMU      ?= qemu-system-x86_64
QEMU_MEM  ?= 128
# tamago/amd64 needs RDRAND, which QEMU's default TCG CPU lacks.
QEMU_CPU  ?= max
OVMF_CODE ?= /usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS ?= /usr/share/OVMF/OVMF_VARS_4M.fd

WITH_TAMAGO = tools/scripts/with-tamago.sh

.PHONY: help test vet staticcheck tamago-check race fuzz-short fuzz bench bench-http sim loader-test clean \
	kernel gen1 gen2 qemu qemu-gen1 qemu-gen2 qemu-hyperv \
	_kernel _gen1 _gen2 _qemu _qemu-gen1 _qemu-gen2 _qemu-hyperv

help:
	@echo "make sim          run the guest driver stack against the simulated Hyper-V host"
	@echo "make test         vet, staticcheck, race-enabled tests (incl. QEMU loader boots), short fuzzing"
	@echo "make fuzz         every fuzz target for FUZZTIME (default here 60s)"
	@echo "make bench        ring, storvsc, netvsc and block benchmarks next to their baselines"
	@echo "make bench-http   (root) wrk against net/http in the guest over TAP and against Linux on loopback"
	@echo "make loader-test  boot the Gen1/Gen2 loaders with a test payload under QEMU"
	@echo "make kernel gen1 gen2 qemu qemu-gen1 qemu-gen2 qemu-hyperv   need the TamaGo compiler (TAMAGO=...)"

test: vet staticcheck tamago-check race fuzz-short

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)

staticcheck:
	$(STATICCHECK) $(PKGS)

# Compile (not link) the bare-metal code with stock Go and stand-ins for
# tamago-go's runtime additions: see tools/tamagocheck/README.md.
tamago-check:
	tools/scripts/tamago-check.sh -tags $(KERNEL_TAGS) ./boot ./hv/... ./vmbus/... ./drivers/... ./kernel/... ./netstack/... ./azure
	tools/scripts/tamago-check.sh -tags $(KERNEL_TAGS) $(KERNEL_PKG)
	tools/scripts/tamago-check.sh -tags $(KERNEL_TAGS) ./examples/httpd

race:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

fuzz-short:
	FUZZTIME=$(FUZZTIME) tools/scripts/fuzz.sh $(PKGS)

fuzz:
	FUZZTIME=$(if $(filter 3s,$(FUZZTIME)),60s,$(FUZZTIME)) tools/scripts/fuzz.sh $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./vmbus/ring/ ./vmbus/ ./hv/dma/ ./drivers/storvsc/ ./drivers/netvsc/ ./drivers/block/... ./netstack/ ./kernel/
	@echo "HTTP requests per second (guest over TAP vs Linux on loopback, wrk, needs root): make bench-http"

# Not part of test or bench: needs root, wrk and dnsmasq; creates and
# deletes its own network namespace. DURATION, CONNS, THREADS tune wrk.
bench-http:
	tools/scripts/bench-http.sh

sim:
	$(GO) run ./tools/cmd/gohv-sim

loader-test:
	$(GO) test -count=1 -v -run 'TestBoot' ./boot/gen1/ ./boot/gen2/

# --- targets that need the TamaGo compiler -------------------------------
# Each public target checks for the compiler once (one line and exit 0 when
# it is missing), then runs its private twin with TAMAGO exported.

kernel gen1 gen2 qemu qemu-gen1 qemu-gen2 qemu-hyperv:
	@$(WITH_TAMAGO) $(MAKE) --no-print-directory _$@

_kernel:
	mkdir -p $(BUILD)
	GOOS=tamago GOARCH=amd64 GOOSPKG=$(GOOSPKG) "$(TAMAGO)" build -tags $(KERNEL_TAGS) -ldflags "$(LDFLAGS)" -o $(BUILD)/kernel.elf $(KERNEL_PKG)

_gen1: _kernel
	$(GO) run ./tools/cmd/mkimage -gen 1 -format $(FORMAT) -size $(IMAGE_SIZE) -kernel $(BUILD)/kernel.elf -o $(BUILD)/gen1.$(IMAGE_EXT)

_gen2: _kernel
	$(GO) run ./tools/cmd/mkimage -gen 2 -format $(FORMAT) -size $(IMAGE_SIZE) -kernel $(BUILD)/kernel.elf -o $(BUILD)/gen2.$(IMAGE_EXT)

_qemu: _kernel
	$(QEMU) -accel tcg -cpu $(QEMU_CPU) -m $(QEMU_MEM) -nographic -monitor none -serial stdio -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel $(BUILD)/kernel.elf

_qemu-gen1:
	$(MAKE) --no-print-directory _gen1 FORMAT=raw
	$(QEMU) -accel tcg -cpu $(QEMU_CPU) -m $(QEMU_MEM) -nographic -monitor none -serial stdio -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -drive file=$(BUILD)/gen1.raw,format=raw,if=ide

_qemu-gen2:
	$(MAKE) --no-print-directory _gen2 FORMAT=raw
	cp $(OVMF_VARS) $(BUILD)/ovmf-vars.fd
	$(QEMU) -accel tcg -cpu $(QEMU_CPU) -M q35 -m $(QEMU_MEM) -nographic -monitor none -serial stdio -no-reboot -nic none \
		-drive if=pflash,format=raw,readonly=on,file=$(OVMF_CODE) -drive if=pflash,format=raw,file=$(BUILD)/ovmf-vars.fd \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -drive file=$(BUILD)/gen2.raw,format=raw,if=virtio

# For workstations whose KVM offers Hyper-V enlightenments (QEMU 8.2+):
# exercises the real VMBus control path through QEMU's vmbus-bridge. Not run
# on the project's machines, which have no such KVM.
_qemu-hyperv: _kernel
	$(QEMU) -accel kvm -m $(QEMU_MEM) -nographic -monitor none -serial stdio -no-reboot \
		-cpu host,hv-relaxed,hv-vapic,hv-time,hv-vpindex,hv-synic,hv-stimer,hv-runtime,hv-frequencies \
		-device vmbus-bridge -kernel $(BUILD)/kernel.elf

clean:
	rm -rf $(BUILD)
