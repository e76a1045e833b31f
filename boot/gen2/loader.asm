; gohv Gen2 (UEFI) loader: an x86-64 EFI application (PE32+, subsystem 10).
;
; Assemble: nasm -f bin -o loader.efi loader.asm
;
; The image carries the gohv kernel image (GKI, docs/boot.md) as
; its last PE section ".gohvkrn", appended on the host by gen2.BuildEFI. At
; run time the loader finds that section through its own loaded headers,
; validates the GKI, places its segments at their physical addresses,
; collects the RSDP and the final UEFI memory map, exits boot services,
; leaves long mode and enters the kernel's PVH entry in 32-bit flat
; protected mode with EBX = &hvm_start_info.
;
; Messages: progress and errors on ConOut until ExitBootServices, one line
; on COM1 after it ("gohv: boot services exited"), nothing else. On an error
; the loader waits 5 s and returns EFI_LOAD_ERROR to the boot manager.
;
; The code is position independent (RIP-relative only): the firmware may
; load it anywhere, and the image carries no base relocations.

BITS 64
DEFAULT REL

IMAGE_BASE      equ 0x10000         ; below 1 MiB: EDK2 does not try to load at it
SECT_ALIGN      equ 0x1000
FILE_ALIGN      equ 0x200
HDR_SIZE        equ 0x200           ; room for 3 section headers (.text .data + the GKI)
TEXT_RVA        equ 0x1000

; EFI status codes (UEFI 2.10 appendix D).
EFI_LOAD_ERROR        equ 0x8000000000000001
EFI_INVALID_PARAMETER equ 0x8000000000000002

; EFI_SYSTEM_TABLE offsets (x64).
ST_CONOUT       equ 64
ST_BOOTSERVICES equ 96
ST_NTABLES      equ 104
ST_CONFTABLE    equ 112
; EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL.
CON_OUTPUTSTRING equ 8
; EFI_BOOT_SERVICES offsets (x64).
BS_ALLOCATEPAGES    equ 40
BS_GETMEMORYMAP     equ 56
BS_ALLOCATEPOOL     equ 64
BS_HANDLEPROTOCOL   equ 152
BS_EXITBOOTSERVICES equ 232
BS_STALL            equ 248
; EFI_LOADED_IMAGE_PROTOCOL.
LI_IMAGEBASE    equ 64
LI_IMAGESIZE    equ 72
; EFI_MEMORY_DESCRIPTOR.
MD_TYPE         equ 0
MD_PHYSSTART    equ 8
MD_NPAGES       equ 24
MD_MINSIZE      equ 40
; AllocatePages types and memory types.
ALLOC_MAXADDR   equ 1
ALLOC_ADDRESS   equ 2
MT_LOADERCODE   equ 1
MT_LOADERDATA   equ 2
MT_RTCODE       equ 5
; STACK_GUARD is how far below the current stack pointer the loader and
; the firmware calls it makes may reach.
STACK_GUARD     equ 0x10000

; GKI header (docs/boot.md, "The gohv kernel image (GKI)").
GKI_MAGIC       equ 0
GKI_VERSION     equ 8
GKI_HDRSIZE     equ 12
GKI_ENTRY       equ 16
GKI_NSEG        equ 20
GKI_TOTAL       equ 24
GKI_CRC         equ 28
GKI_SEGS        equ 32
SEG_PADDR       equ 0
SEG_OFF         equ 8
SEG_FILESZ      equ 12
SEG_MEMSZ       equ 16
SEG_SIZE        equ 24
GKI_MAXSEG      equ 16

; hvm_start_info (Xen public arch-x86/hvm/start_info.h) and E820 entries.
SI_MAGIC_VALUE  equ 0x336ec578
SI_MAGIC        equ 0
SI_VERSION      equ 4
SI_RSDP         equ 32
SI_MEMMAP       equ 40
SI_MEMMAP_N     equ 48
E820_SIZE       equ 24

; Layout of the low block handed to the kernel (below 1 MiB when possible).
LOW_SI          equ 0x000           ; hvm_start_info
LOW_GDT         equ 0x040           ; null, code32 (0x08), data32 (0x10)
LOW_GDTR        equ 0x060
LOW_TRAMP       equ 0x080           ; 32-bit trampoline
LOW_MEMMAP      equ 0x100
SEL_CODE32      equ 0x08
SEL_DATA32      equ 0x10

; ---------------------------------------------------------------------------
; Headers: DOS stub header, PE signature, COFF header, PE32+ optional header,
; section table. The third section slot is left zeroed for BuildEFI.
section .hdr start=0 vstart=0

    db 'MZ'
    times 0x3c-($-$$) db 0
    dd pe_sig
pe_sig:
    db 'P', 'E', 0, 0
    dw 0x8664                       ; Machine: x86-64
    dw 2                            ; NumberOfSections (BuildEFI adds one)
    dd 0                            ; TimeDateStamp (0: reproducible)
    dd 0, 0                         ; no COFF symbols
    dw opt_end - opt                ; SizeOfOptionalHeader
    dw 0x0022                       ; EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
opt:
    dw 0x020b                       ; PE32+
    db 0, 0
    dd text_raw                     ; SizeOfCode
    dd data_raw                     ; SizeOfInitializedData
    dd 0                            ; SizeOfUninitializedData
    dd efi_main                     ; AddressOfEntryPoint (labels are RVAs)
    dd TEXT_RVA                     ; BaseOfCode
    dq IMAGE_BASE
    dd SECT_ALIGN
    dd FILE_ALIGN
    dw 0, 0, 0, 0, 0, 0             ; OS, image, subsystem versions
    dd 0                            ; Win32VersionValue
    dd DATA_RVA + ((data_raw + SECT_ALIGN - 1) / SECT_ALIGN) * SECT_ALIGN ; SizeOfImage
    dd HDR_SIZE                     ; SizeOfHeaders
    dd 0                            ; CheckSum (BuildEFI computes it)
    dw 10                           ; Subsystem: EFI application
    dw 0x0100                       ; DllCharacteristics: NX_COMPAT (sections are W^X)
    dq 0x10000, 0x1000, 0x10000, 0x1000 ; stack/heap reserve/commit (unused by UEFI)
    dd 0                            ; LoaderFlags
    dd 16                           ; NumberOfRvaAndSizes
    times 16 dq 0                   ; no directories: no imports, no relocations
opt_end:
    db '.text', 0, 0, 0
    dd text_end - text_start        ; VirtualSize
    dd TEXT_RVA
    dd text_raw                     ; SizeOfRawData
    dd HDR_SIZE                     ; PointerToRawData
    dd 0, 0
    dw 0, 0
    dd 0x60000020                   ; CNT_CODE | MEM_EXECUTE | MEM_READ
    db '.data', 0, 0, 0
    dd data_end - data_start
    dd DATA_RVA
    dd data_raw
    dd HDR_SIZE + text_raw
    dd 0, 0
    dw 0, 0
    dd 0xc0000040                   ; CNT_INITIALIZED_DATA | MEM_READ | MEM_WRITE
    times HDR_SIZE-($-$$) db 0

; ---------------------------------------------------------------------------
section .text follows=.hdr vstart=TEXT_RVA
text_start:

; efi_main(ImageHandle rcx, SystemTable rdx) -> EFI_STATUS. Returns only on
; error, after printing why.
efi_main:
    push rbx
    push rbp
    push rsi
    push rdi
    push r12
    push r13
    push r14
    push r15
    mov rbp, rsp
    and rsp, -16
    sub rsp, 64                     ; shadow space + up to 4 stack arguments
    cld
    mov [g_image], rcx
    mov [g_systab], rdx
    mov rax, [rdx + ST_BOOTSERVICES]
    mov [g_bs], rax

    lea rcx, [msg_hello]
    call puts

    ; --- our own image, through EFI_LOADED_IMAGE_PROTOCOL
    mov rcx, [g_image]
    lea rdx, [guid_loaded_image]
    lea r8, [g_li]
    mov rax, [g_bs]
    call [rax + BS_HANDLEPROTOCOL]
    lea rcx, [msg_noimage]
    test rax, rax
    jnz fail
    mov rax, [g_li]
    mov r12, [rax + LI_IMAGEBASE]
    mov r13, [rax + LI_IMAGESIZE]

    ; --- find the ".gohvkrn" section in our loaded headers
    lea rcx, [msg_nosection]
    cmp r13, HDR_SIZE
    jb fail
    mov eax, [r12 + 0x3c]           ; e_lfanew
    lea rdx, [rax + 24]
    cmp rdx, r13
    ja fail
    lea rbx, [r12 + rax]
    cmp dword [rbx], 0x00004550     ; "PE\0\0"
    jne fail
    movzx r8d, word [rbx + 6]       ; NumberOfSections
    movzx edx, word [rbx + 20]      ; SizeOfOptionalHeader
    lea rsi, [rbx + 24 + rdx]       ; section table
    imul rdx, r8, 40
    add rdx, rsi
    lea r9, [r12 + r13]
    cmp rdx, r9
    ja fail
    mov rdi, [secname]
.nextsec:
    test r8d, r8d
    jz fail
    cmp [rsi], rdi
    je .foundsec
    add rsi, 40
    dec r8d
    jmp .nextsec
.foundsec:
    mov eax, [rsi + 12]             ; VirtualAddress
    mov edx, [rsi + 8]              ; VirtualSize
    mov r8d, [rsi + 16]             ; SizeOfRawData
    cmp rdx, r8
    cmova rdx, r8                   ; only what the file really holds
    lea r9, [rax + rdx]
    cmp r9, r13
    ja fail
    lea r14, [r12 + rax]            ; r14 = GKI
    mov r15, rdx                    ; r15 = bytes available

    ; --- validate the GKI header
    lea rcx, [msg_badimage]
    cmp r15, 512
    jb fail
    mov rax, 'GOHVKIMG'
    cmp [r14 + GKI_MAGIC], rax
    jne fail
    cmp dword [r14 + GKI_VERSION], 1
    jne fail
    mov ebx, [r14 + GKI_NSEG]
    test ebx, ebx
    jz fail
    cmp ebx, GKI_MAXSEG
    ja fail
    mov eax, [r14 + GKI_HDRSIZE]
    test eax, eax
    jz fail
    test eax, 511
    jnz fail
    imul edx, ebx, SEG_SIZE
    add edx, GKI_SEGS
    cmp eax, edx
    jb fail
    mov edx, [r14 + GKI_TOTAL]
    test edx, 511
    jnz fail
    cmp rdx, r15
    ja fail
    cmp eax, edx
    ja fail
    ; CRC-32 of [header size, total size)
    push rcx
    push rcx
    call crc_init
    mov eax, [r14 + GKI_HDRSIZE]
    mov edx, [r14 + GKI_TOTAL]
    lea rcx, [r14 + rax]
    sub edx, eax
    call crc32
    pop rcx
    pop rcx
    cmp eax, [r14 + GKI_CRC]
    jne fail

    ; --- validate segments: rbx = count, r8 = index
    xor r8d, r8d
    mov r10d, [r14 + GKI_ENTRY]
    xor r11d, r11d                  ; entry found inside a segment?
.segcheck:
    imul esi, r8d, SEG_SIZE
    lea rsi, [r14 + GKI_SEGS + rsi]
    mov eax, [rsi + SEG_OFF]
    test eax, 511
    jnz fail
    cmp eax, [r14 + GKI_HDRSIZE]
    jb fail
    mov edx, [rsi + SEG_FILESZ]
    add rdx, rax
    mov eax, [r14 + GKI_TOTAL]
    cmp rdx, rax
    ja fail
    mov rax, [rsi + SEG_MEMSZ]
    mov edx, [rsi + SEG_FILESZ]
    cmp rax, rdx
    jb fail
    test rax, rax
    jz fail
    mov r9, 0x100000000
    cmp rax, r9
    ja fail
    mov rdx, [rsi + SEG_PADDR]
    cmp rdx, 0x100000
    jb fail
    cmp rdx, r9
    jae fail
    add rax, rdx                    ; rax = end, no overflow (both < 2^33)
    cmp rax, r9
    ja fail
    cmp r10, rdx
    jb .noentry
    cmp r10, rax
    jae .noentry
    mov r11d, 1
.noentry:
    ; no overlap with any earlier segment
    xor r9d, r9d
.ovl:
    cmp r9d, r8d
    jae .ovldone
    imul edi, r9d, SEG_SIZE
    lea rdi, [r14 + GKI_SEGS + rdi]
    mov rbx, [rdi + SEG_PADDR]
    add rbx, [rdi + SEG_MEMSZ]
    cmp rdx, rbx                    ; this.start < other.end ?
    jae .ovlnext
    cmp [rdi + SEG_PADDR], rax      ; other.start < this.end ?
    jb fail
.ovlnext:
    inc r9d
    jmp .ovl
.ovldone:
    mov ebx, [r14 + GKI_NSEG]
    inc r8d
    cmp r8d, ebx
    jb .segcheck
    test r11d, r11d
    jz fail

    ; --- allocate, copy and zero the segments
    xor r12d, r12d                  ; r12 = segment index
.segload:
    imul esi, r12d, SEG_SIZE
    lea rsi, [r14 + GKI_SEGS + rsi]
    mov r13, [rsi + SEG_PADDR]
    and r13, -4096                  ; r13 = first page
    mov rbx, [rsi + SEG_PADDR]
    add rbx, [rsi + SEG_MEMSZ]
    add rbx, 4095
    and rbx, -4096                  ; rbx = end page
    ; a page shared with an earlier segment is already ours
    xor r9d, r9d
.trim:
    cmp r9d, r12d
    jae .trimmed
    imul edi, r9d, SEG_SIZE
    lea rdi, [r14 + GKI_SEGS + rdi]
    mov r10, [rdi + SEG_PADDR]
    and r10, -4096                  ; other first page
    mov r11, [rdi + SEG_PADDR]
    add r11, [rdi + SEG_MEMSZ]
    add r11, 4095
    and r11, -4096                  ; other end page
    cmp r13, r10
    jb .trimend
    cmp r13, r11
    jae .trimend
    mov r13, r11
.trimend:
    cmp rbx, r10
    jbe .trimnext
    cmp rbx, r11
    ja .trimnext
    mov rbx, r10
.trimnext:
    inc r9d
    jmp .trim
.trimmed:
    cmp r13, rbx
    jae .copy
    mov [g_addr], r13
    mov ecx, ALLOC_ADDRESS
    mov edx, MT_LOADERDATA
    mov r8, rbx
    sub r8, r13
    shr r8, 12
    lea r9, [g_addr]
    mov rax, [g_bs]
    call [rax + BS_ALLOCATEPAGES]
    test rax, rax
    jz .copy
    ; The firmware holds part of [r13, rbx) (boot-services data such as
    ; OVMF's decompressed DXE volume at 9-23 MiB): that memory is free once
    ; boot services end, so copy the segment after ExitBootServices. Only
    ; the loader itself (which holds the GKI) and the stack must stay clear
    ; of it, since both are still in use then.
    mov rax, [g_li]
    mov rcx, [rax + LI_IMAGEBASE]
    mov rdx, [rax + LI_IMAGESIZE]
    add rdx, rcx                    ; [rcx, rdx) = this loader's image
    cmp r13, rdx
    jae .notimage
    cmp rcx, rbx
    jb .clash
.notimage:
    lea rcx, [rsp - STACK_GUARD]
    lea rdx, [rsp + 4096]           ; [rcx, rdx) = the stack in use
    cmp r13, rdx
    jae .notstack
    cmp rcx, rbx
    jb .clash
.notstack:
    mov byte [g_defer], 1
    jmp .segnext
.clash:
    lea rcx, [msg_noalloc]
    call puts
    mov rcx, r13
    call puthex
    lea rcx, [msg_crlf]
    jmp fail
.copy:
    mov ecx, r12d
    call copyseg
.segnext:
    inc r12d
    cmp r12d, [r14 + GKI_NSEG]
    jb .segload
    mov eax, [r14 + GKI_ENTRY]
    mov [g_entry], rax

    ; --- RSDP from the configuration table: ACPI 2.0, else ACPI 1.0
    lea rcx, [guid_acpi20]
    call find_config
    test rax, rax
    jnz .rsdp
    lea rcx, [guid_acpi10]
    call find_config
.rsdp:
    mov [g_rsdp], rax

    ; --- memory map buffer and the low block, sized from the current map
    mov qword [g_mmsize], 0
    lea rcx, [g_mmsize]
    xor edx, edx
    lea r8, [g_mmkey]
    lea r9, [g_dsize]
    lea rax, [g_dver]
    mov [rsp + 32], rax
    mov rax, [g_bs]
    call [rax + BS_GETMEMORYMAP]
    lea rcx, [msg_nomap]
    mov rax, [g_dsize]
    cmp rax, MD_MINSIZE
    jb fail
    shl rax, 6                      ; room for 64 more descriptors
    add rax, [g_mmsize]
    mov [g_mmcap], rax
    mov ecx, MT_LOADERDATA
    mov rdx, rax
    lea r8, [g_mmbuf]
    mov rax, [g_bs]
    call [rax + BS_ALLOCATEPOOL]
    lea rcx, [msg_nomap]
    test rax, rax
    jnz fail

    ; --- a deferred segment must land in memory that is RAM once boot
    ; services end (conventional, loader or boot-services code and data),
    ; never in MMIO or firmware-reserved ranges: check every segment now,
    ; while the console still works
    cmp byte [g_defer], 0
    je .ramok
    call getmap
    lea rcx, [msg_nomap]
    test rax, rax
    jnz fail
    xor r12d, r12d
.ramseg:
    imul esi, r12d, SEG_SIZE
    lea rsi, [r14 + GKI_SEGS + rsi]
    mov r13, [rsi + SEG_PADDR]
    and r13, -4096                  ; r13 = first page
    mov rbx, [rsi + SEG_PADDR]
    add rbx, [rsi + SEG_MEMSZ]      ; rbx = end
.ramnext:
    cmp r13, rbx
    jae .ramsegok
    mov rsi, [g_mmbuf]
    mov rcx, [g_mmsize]
    add rcx, rsi                    ; rcx = end of the descriptors
.ramdesc:
    cmp rsi, rcx
    jae .notram
    mov eax, [rsi + MD_TYPE]
    cmp eax, 7                      ; EfiConventionalMemory
    je .ramtype
    cmp eax, 1                      ; loader code, loader data, BS code, BS data
    jb .ramskip
    cmp eax, 4
    ja .ramskip
.ramtype:
    mov rdx, [rsi + MD_PHYSSTART]
    cmp r13, rdx
    jb .ramskip
    mov rax, [rsi + MD_NPAGES]
    shl rax, 12
    add rax, rdx                    ; descriptor end
    cmp r13, rax
    jae .ramskip
    mov r13, rax                    ; covered up to here
    jmp .ramnext
.ramskip:
    add rsi, [g_dsize]
    jmp .ramdesc
.notram:
    lea rcx, [msg_noalloc]
    call puts
    mov rcx, r13
    call puthex
    lea rcx, [msg_crlf]
    jmp fail
.ramsegok:
    inc r12d
    cmp r12d, [r14 + GKI_NSEG]
    jb .ramseg
.ramok:

    ; low block: start_info, GDT, trampoline, memmap, then one page of stack
    mov rax, [g_mmcap]
    xor edx, edx
    div qword [g_dsize]
    imul rax, rax, E820_SIZE
    add rax, LOW_MEMMAP + 4095
    shr rax, 12
    inc rax
    mov [g_lowpages], rax
    ; below 1 MiB, executable (the trampoline runs there with paging on)
    mov qword [g_low], 0xfffff
    mov ecx, ALLOC_MAXADDR
    mov edx, MT_LOADERCODE
    mov r8, rax
    lea r9, [g_low]
    mov rax, [g_bs]
    call [rax + BS_ALLOCATEPAGES]
    test rax, rax
    jz .lowok
    ; else below 4 GiB, as runtime code: executable and reserved in the map
    mov eax, 0xffffffff
    mov [g_low], rax
    mov ecx, ALLOC_MAXADDR
    mov edx, MT_RTCODE
    mov r8, [g_lowpages]
    lea r9, [g_low]
    mov rax, [g_bs]
    call [rax + BS_ALLOCATEPAGES]
    lea rcx, [msg_nolow]
    test rax, rax
    jnz fail
.lowok:
    mov rdi, [g_low]
    mov rcx, [g_lowpages]
    shl rcx, 12
    xor eax, eax
    rep stosb
    mov rbx, [g_low]
    ; GDT
    mov rax, 0x00cf9a000000ffff     ; 32-bit code, base 0, limit 4 GiB
    mov [rbx + LOW_GDT + 8], rax
    mov rax, 0x00cf92000000ffff     ; 32-bit data, base 0, limit 4 GiB
    mov [rbx + LOW_GDT + 16], rax
    mov word [rbx + LOW_GDTR], 23
    lea rax, [rbx + LOW_GDT]
    mov [rbx + LOW_GDTR + 2], rax
    ; trampoline
    lea rsi, [tramp32]
    lea rdi, [rbx + LOW_TRAMP]
    mov ecx, tramp32_end - tramp32
    rep movsb
    ; start_info fields known now
    mov dword [rbx + SI_MAGIC], SI_MAGIC_VALUE
    mov dword [rbx + SI_VERSION], 1
    mov rax, [g_rsdp]
    mov [rbx + SI_RSDP], rax
    lea rax, [rbx + LOW_MEMMAP]
    mov [rbx + SI_MEMMAP], rax

    lea rcx, [msg_start]
    call puts
    mov rcx, [g_entry]
    call puthex
    lea rcx, [msg_crlf]
    call puts

    ; --- final memory map and ExitBootServices (one retry, UEFI 2.10 §7.4)
    xor r13d, r13d                  ; attempt
.getmap:
    call getmap
    test rax, rax
    jz .mapped
    test r13d, r13d
    jnz ebs_failed                  ; after a failed ExitBootServices
    lea rcx, [msg_nomap]
    jmp fail
.mapped:
    mov rcx, [g_image]
    mov rdx, [g_mmkey]
    mov rax, [g_bs]
    call [rax + BS_EXITBOOTSERVICES]
    test rax, rax
    jz .exited
    ; Once ExitBootServices has been called, even unsuccessfully, only
    ; GetMemoryMap and ExitBootServices may be called (UEFI 2.10 §7.4):
    ; no ConOut, no Stall, no return to the firmware.
    test r13d, r13d
    jnz ebs_failed
    mov rdx, EFI_INVALID_PARAMETER
    cmp rax, rdx
    jne ebs_failed
    inc r13d
    jmp .getmap

    ; --- no firmware from here on
.exited:
    cli
    lea rcx, [msg_exited]           ; the firmware console is gone: COM1 only
    call com1_puts
    mov rsi, [g_mmbuf]
    mov rax, [g_mmsize]
    xor edx, edx
    div qword [g_dsize]
    mov rcx, rax                    ; descriptors
    lea rdi, [rbx + LOW_MEMMAP]
    xor r8d, r8d                    ; entries written
    lea r10, [e820_of_efi]
.conv:
    test rcx, rcx
    jz .convdone
    mov rax, [rsi + MD_NPAGES]
    test rax, rax
    jz .convnext
    shl rax, 12
    mov [rdi + 8], rax
    mov rax, [rsi + MD_PHYSSTART]
    mov [rdi], rax
    mov eax, [rsi + MD_TYPE]
    mov edx, 2
    cmp eax, 16
    jae .settype
    movzx edx, byte [r10 + rax]
.settype:
    mov [rdi + 16], edx
    mov dword [rdi + 20], 0
    add rdi, E820_SIZE
    inc r8
.convnext:
    add rsi, [g_dsize]
    dec rcx
    jmp .conv
.convdone:
    ; insertion sort by address: firmware maps are usually sorted, not always
    lea rsi, [rbx + LOW_MEMMAP]
    mov r9d, 1
.sorti:
    cmp r9, r8
    jae .sorted
    imul rdi, r9, E820_SIZE
    add rdi, rsi
    mov rax, [rdi]                  ; key
    mov rdx, [rdi + 8]
    mov r10, [rdi + 16]
.sortj:
    cmp rdi, rsi
    jbe .place
    cmp [rdi - E820_SIZE], rax
    jbe .place
    mov r11, [rdi - E820_SIZE]
    mov [rdi], r11
    mov r11, [rdi - E820_SIZE + 8]
    mov [rdi + 8], r11
    mov r11, [rdi - E820_SIZE + 16]
    mov [rdi + 16], r11
    sub rdi, E820_SIZE
    jmp .sortj
.place:
    mov [rdi], rax
    mov [rdi + 8], rdx
    mov [rdi + 16], r10
    inc r9
    jmp .sorti
.sorted:
    ; merge neighbours of the same type
    test r8, r8
    jz .merged
    mov rdi, rsi                    ; last kept
    mov r9d, 1
.merge:
    cmp r9, r8
    jae .mergedone
    imul rdx, r9, E820_SIZE
    add rdx, rsi
    mov eax, [rdx + 16]
    cmp eax, [rdi + 16]
    jne .keep
    mov rax, [rdi]
    add rax, [rdi + 8]
    cmp rax, [rdx]
    jne .keep
    mov rax, [rdx + 8]
    add [rdi + 8], rax
    jmp .mergenext
.keep:
    add rdi, E820_SIZE
    mov rax, [rdx]
    mov [rdi], rax
    mov rax, [rdx + 8]
    mov [rdi + 8], rax
    mov rax, [rdx + 16]
    mov [rdi + 16], rax
.mergenext:
    inc r9
    jmp .merge
.mergedone:
    sub rdi, rsi
    mov rax, rdi
    xor edx, edx
    mov ecx, E820_SIZE
    div rcx
    lea r8, [rax + 1]
.merged:
    mov [rbx + SI_MEMMAP_N], r8d

    ; --- segments the firmware's memory kept us from placing before
    cmp byte [g_defer], 0
    je .placed
    xor r12d, r12d
.deferred:
    mov ecx, r12d
    call copyseg
    inc r12d
    cmp r12d, [r14 + GKI_NSEG]
    jb .deferred
.placed:

    ; --- leave long mode through the 32-bit trampoline in the low block
    lgdt [rbx + LOW_GDTR]
    mov rdi, [g_lowpages]
    shl rdi, 12
    add rdi, rbx                    ; edi = stack top for the kernel
    mov rsi, [g_entry]              ; esi = PVH entry
    push SEL_CODE32
    lea rax, [rbx + LOW_TRAMP]
    push rax
    o64 retf                        ; to compatibility mode, CS = code32

; Copied to the low block; entered in compatibility mode with EBX =
; start_info, ESI = entry, EDI = stack top. Position independent.
BITS 32
tramp32:
    mov eax, cr0
    and eax, 0x7fffffff             ; PG off: IA32_EFER.LMA drops to 0
    mov cr0, eax
    mov ecx, 0xc0000080             ; IA32_EFER: LME, NXE off, as after reset
    xor eax, eax
    xor edx, edx
    wrmsr
    mov cr4, eax                    ; CR4 as QEMU's own PVH boot leaves it
    mov eax, SEL_DATA32
    mov ds, eax
    mov es, eax
    mov fs, eax
    mov gs, eax
    mov ss, eax
    mov esp, edi
    xor eax, eax
    xor ecx, ecx
    xor edx, edx
    xor edi, edi
    xor ebp, ebp
    jmp esi
tramp32_end:
BITS 64

; ebs_failed: ExitBootServices failed; boot services may be half gone, so
; report on COM1 directly and halt.
ebs_failed:
    cli
    lea rcx, [msg_noexit]
    call com1_puts
.halt:
    hlt
    jmp .halt

; getmap: GetMemoryMap into g_mmbuf (g_mmcap bytes); returns its status in
; rax. Called with rsp 16-byte aligned, as the body keeps it.
getmap:
    sub rsp, 40                     ; shadow space + the fifth argument
    mov rax, [g_mmcap]
    mov [g_mmsize], rax
    lea rcx, [g_mmsize]
    mov rdx, [g_mmbuf]
    lea r8, [g_mmkey]
    lea r9, [g_dsize]
    lea rax, [g_dver]
    mov [rsp + 32], rax
    mov rax, [g_bs]
    call [rax + BS_GETMEMORYMAP]
    add rsp, 40
    ret

; copyseg(index ecx): copy segment ecx of the GKI at r14 to its load
; address and zero its tail. Clobbers rax, rcx, rdx, rsi, rdi.
copyseg:
    imul esi, ecx, SEG_SIZE
    lea rax, [r14 + GKI_SEGS + rsi]
    mov rdi, [rax + SEG_PADDR]
    mov esi, [rax + SEG_OFF]
    add rsi, r14
    mov ecx, [rax + SEG_FILESZ]
    rep movsb
    mov rcx, [rax + SEG_MEMSZ]
    mov edx, [rax + SEG_FILESZ]
    sub rcx, rdx
    xor eax, eax
    rep stosb
    ret

; fail: print the message at rcx, give a reader time, return EFI_LOAD_ERROR.
fail:
    call puts
    mov ecx, 5000000
    mov rax, [g_bs]
    call [rax + BS_STALL]
    mov rax, EFI_LOAD_ERROR
    mov rsp, rbp
    pop r15
    pop r14
    pop r13
    pop r12
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    ret

; com1_puts(ascii rcx): polled output on the legacy COM1 port, as set up by
; the firmware. Bounded waits: a missing port must not hang the loader.
com1_puts:
    mov r8, rcx
.char:
    mov al, [r8]
    test al, al
    jz .done
    mov r9d, 100000
    mov dx, 0x3fd                   ; line status register
.wait:
    in al, dx
    test al, 0x20                   ; transmit holding register empty
    jnz .send
    dec r9d
    jnz .wait
.send:
    mov al, [r8]
    mov dx, 0x3f8
    out dx, al
    inc r8
    jmp .char
.done:
    ret

; find_config(guid rcx) -> rax = VendorTable or 0.
find_config:
    mov rax, [g_systab]
    mov r8, [rax + ST_NTABLES]
    mov r9, [rax + ST_CONFTABLE]
    mov r10, [rcx]
    mov r11, [rcx + 8]
.next:
    test r8, r8
    jz .none
    cmp [r9], r10
    jne .skip
    cmp [r9 + 8], r11
    jne .skip
    mov rax, [r9 + 16]
    ret
.skip:
    add r9, 24
    dec r8
    jmp .next
.none:
    xor eax, eax
    ret

; puts(ascii rcx): ConOut->OutputString of the string, widened to UCS-2.
puts:
    push rsi
    push rdi
    push rbp
    mov rbp, rsp
    and rsp, -16
    sub rsp, 32
    mov rsi, rcx
    lea rdi, [g_wbuf]
    mov ecx, 255
.widen:
    lodsb
    test al, al
    jz .done
    movzx eax, al
    stosw
    loop .widen
.done:
    xor eax, eax
    stosw
    mov rax, [g_systab]
    mov rcx, [rax + ST_CONOUT]
    test rcx, rcx                   ; headless firmware: nowhere to print
    jz .out
    lea rdx, [g_wbuf]
    call [rcx + CON_OUTPUTSTRING]
.out:
    mov rsp, rbp
    pop rbp
    pop rdi
    pop rsi
    ret

; puthex(value rcx): prints "0x" and 16 hex digits.
puthex:
    lea r8, [g_hexbuf + 2]
    mov r9d, 16
.digit:
    rol rcx, 4
    mov eax, ecx
    and eax, 15
    add eax, '0'
    cmp eax, '9'
    jbe .store
    add eax, 'a' - '9' - 1
.store:
    mov [r8], al
    inc r8
    dec r9d
    jnz .digit
    lea rcx, [g_hexbuf]
    jmp puts

; crc_init: the CRC-32 (IEEE, reflected 0xedb88320) table.
crc_init:
    lea r8, [g_crctab]
    xor ecx, ecx
.entry:
    mov eax, ecx
    mov edx, 8
.bit:
    shr eax, 1
    jnc .nox
    xor eax, 0xedb88320
.nox:
    dec edx
    jnz .bit
    mov [r8 + rcx * 4], eax
    inc ecx
    cmp ecx, 256
    jb .entry
    ret

; crc32(buf rcx, len rdx) -> eax.
crc32:
    lea r8, [g_crctab]
    mov eax, -1
    test rdx, rdx
    jz .end
.byte:
    movzx r9d, byte [rcx]
    xor r9b, al
    shr eax, 8
    xor eax, [r8 + r9 * 4]
    inc rcx
    dec rdx
    jnz .byte
.end:
    not eax
    ret

text_end:
    times (FILE_ALIGN - (($-$$) % FILE_ALIGN)) % FILE_ALIGN db 0
text_padded:
text_raw equ text_padded - text_start
DATA_RVA equ TEXT_RVA + ((text_raw + SECT_ALIGN - 1) / SECT_ALIGN) * SECT_ALIGN

; ---------------------------------------------------------------------------
section .data follows=.text vstart=DATA_RVA
data_start:

guid_loaded_image:                  ; 5b1b31a1-9562-11d2-8e3f-00a0c969723b
    dd 0x5b1b31a1
    dw 0x9562, 0x11d2
    db 0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b
guid_acpi20:                        ; 8868e871-e4f1-11d3-bc22-0080c73c8881
    dd 0x8868e871
    dw 0xe4f1, 0x11d3
    db 0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81
guid_acpi10:                        ; eb9d2d30-2d88-11d3-9a16-0090273fc14d
    dd 0xeb9d2d30
    dw 0x2d88, 0x11d3
    db 0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d
secname:
    db '.gohvkrn'

; E820 type for each EFI memory type 0..15 (docs/boot.md, "One hand-off protocol: PVH").
e820_of_efi:
    db 2                            ; reserved
    db 1, 1                         ; loader code, data
    db 1, 1                         ; boot services code, data
    db 2, 2                         ; runtime services code, data
    db 1                            ; conventional
    db 5                            ; unusable
    db 3                            ; ACPI reclaim
    db 4                            ; ACPI NVS
    db 2, 2, 2, 2, 2                ; MMIO, MMIO port, PAL code, persistent, unaccepted

msg_hello:     db `gohv: UEFI loader\r\n`, 0
msg_noimage:   db `gohv: cannot find own loaded image\r\n`, 0
msg_nosection: db `gohv: no kernel section in loader image\r\n`, 0
msg_badimage:  db `gohv: bad kernel image\r\n`, 0
msg_noalloc:   db `gohv: cannot allocate kernel memory at `, 0
msg_nomap:     db `gohv: cannot get memory map\r\n`, 0
msg_nolow:     db `gohv: cannot allocate low memory\r\n`, 0
msg_start:     db `gohv: starting kernel at `, 0
msg_noexit:    db `gohv: ExitBootServices failed\r\n`, 0
msg_exited:    db `gohv: boot services exited\r\n`, 0
msg_crlf:      db `\r\n`, 0
g_hexbuf:      db '0x0000000000000000', 0

    align 8, db 0
g_image:    dq 0
g_systab:   dq 0
g_bs:       dq 0
g_li:       dq 0
g_addr:     dq 0
g_entry:    dq 0
g_rsdp:     dq 0
g_mmsize:   dq 0
g_mmcap:    dq 0
g_mmbuf:    dq 0
g_mmkey:    dq 0
g_dsize:    dq 0
g_dver:     dq 0
g_low:      dq 0
g_lowpages: dq 0
g_defer:    dq 0
g_wbuf:     times 256 dw 0
g_crctab:   times 256 dd 0

data_end:
    times (FILE_ALIGN - (($-$$) % FILE_ALIGN)) % FILE_ALIGN db 0
data_padded:
data_raw equ data_padded - data_start
