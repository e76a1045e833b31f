; gohv test payload: a tiny PVH kernel that checks what a gohv loader hands
; over (docs/boot.md, "One hand-off protocol: PVH") and reports on COM1.
;
; It is linked at 0x10010000 like a TamaGo kernel so loaders must place
; segments above 256 MiB. The PVH entry (Xen note type 18) differs from the
; ELF entry on purpose: entering through _start is reported as a failure.
;
; Exit through QEMU's isa-debug-exit at port 0xf4: QEMU's exit code is
; value*2+1, so 0x10 -> 33 (all checks passed), 0x11 -> 35 (a check failed).

bits 32

%define COM1            0x3f8
%define DEBUG_EXIT      0xf4
%define EXIT_PASS       0x10
%define EXIT_FAIL       0x11
%define START_MAGIC     0x336ec578
%define DATA_WORDS      24576           ; 96 KiB of pattern: spans loader chunks

extern __bss_start, __bss_end

section .note.Xen note alloc noexec nowrite align=4
        dd 4                            ; namesz ("Xen\0")
        dd 4                            ; descsz
        dd 18                           ; XEN_ELFNOTE_PHYS32_ENTRY
        db "Xen", 0
        dd pvh_entry

section .text progbits alloc exec nowrite align=16
global _start
_start:                                 ; ELF entry: a loader must not use it
        mov esp, stack_top
        call com_init
        mov esi, msg_elf_entry
        call puts
        jmp fail

pvh_entry:
        mov ebp, ebx                    ; start_info, kept for the whole run
        ; The bss check runs before anything is pushed: the stack is in bss.
        mov esi, __bss_start
        xor eax, eax
.bss_loop:
        cmp esi, __bss_end
        jae .bss_done
        or eax, [esi]
        add esi, 4
        jmp .bss_loop
.bss_done:
        mov esp, stack_top
        mov [bss_acc], eax

        ; Hand-off state: protected mode on, paging off, interrupts off.
        xor edx, edx
        mov eax, cr0
        test eax, 1
        jz .entry_bad
        test eax, 0x80000000
        jnz .entry_bad
        pushfd
        pop eax
        test eax, 0x200
        jnz .entry_bad
        inc edx
.entry_bad:
        mov [entry_good], edx

        call com_init
        mov esi, msg_hello
        call puts

        cmp dword [ebp], START_MAGIC
        je .magic_ok
        mov esi, msg_bad_magic
        call puts
        jmp fail
.magic_ok:
        mov esi, msg_prefix
        call puts
        mov esi, msg_start_ok
        call puts

        ; memmap: {addr u64, size u64, type u32, reserved u32}
        mov ecx, [ebp + 48]             ; memmap_entries
        mov eax, ecx
        call putdec
        mov esi, [ebp + 40]             ; memmap_paddr (low half; high half must be 0)
        xor ebx, ebx                    ; RAM in KiB
        test ecx, ecx
        jz .mm_done
        cmp dword [ebp + 44], 0
        jne .mm_done
.mm_loop:
        cmp dword [esi + 16], 1
        jne .mm_next
        mov eax, [esi + 8]
        mov edx, [esi + 12]
        shrd eax, edx, 10
        add ebx, eax
.mm_next:
        add esi, 24
        loop .mm_loop
.mm_done:
        mov esi, msg_ram
        call puts
        mov eax, ebx
        call putdec
        mov esi, msg_kib
        call puts

        xor edi, edi                    ; failure count
        mov esi, msg_bss_ok
        cmp dword [bss_acc], 0
        je .bss_print
        mov esi, msg_bss_bad
        inc edi
.bss_print:
        call puts

        ; data: the pattern the assembler generated must have been copied intact
        mov esi, data_blob
        mov eax, 1
        mov ecx, DATA_WORDS
        mov edx, msg_data_ok
.data_loop:
        imul eax, eax, 1103515245
        add eax, 12345
        cmp [esi], eax
        je .data_next
        mov edx, msg_data_bad
.data_next:
        add esi, 4
        loop .data_loop
        cmp edx, msg_data_ok
        je .data_print
        inc edi
.data_print:
        mov esi, edx
        call puts

        mov esi, msg_entry_ok
        cmp dword [entry_good], 1
        je .entry_print
        mov esi, msg_entry_bad
        inc edi
.entry_print:
        call puts

        mov esi, msg_rsdp
        call puts
        mov eax, [ebp + 32]             ; rsdp_paddr (low half)
        call puthex
        mov esi, msg_nl
        call puts

        test edi, edi
        jnz fail
        mov esi, msg_pass
        call puts
        mov al, EXIT_PASS
        out DEBUG_EXIT, al
        jmp halt

fail:
        mov esi, msg_fail
        call puts
        mov al, EXIT_FAIL
        out DEBUG_EXIT, al
halt:
        cli
        hlt
        jmp halt

; com_init programs COM1 for 115200 8N1.
com_init:
        mov dx, COM1 + 1
        xor al, al
        out dx, al                      ; no interrupts
        mov dx, COM1 + 3
        mov al, 0x80
        out dx, al                      ; DLAB
        mov dx, COM1
        mov al, 1
        out dx, al                      ; divisor 1
        mov dx, COM1 + 1
        xor al, al
        out dx, al
        mov dx, COM1 + 3
        mov al, 3
        out dx, al                      ; 8N1
        mov dx, COM1 + 2
        mov al, 0xc7
        out dx, al                      ; FIFO on
        ret

; putc writes AL to COM1, waiting a bounded time for the transmitter.
putc:
        push ecx
        push edx
        push eax
        mov ecx, 0x100000
        mov dx, COM1 + 5
.wait:
        in al, dx
        test al, 0x20
        jnz .ready
        loop .wait
.ready:
        pop eax
        mov dx, COM1
        out dx, al
        pop edx
        pop ecx
        ret

; puts writes the NUL-terminated string at ESI.
puts:
        push eax
        push esi
.next:
        lodsb
        test al, al
        jz .done
        call putc
        jmp .next
.done:
        pop esi
        pop eax
        ret

; putdec writes EAX in decimal.
putdec:
        pushad
        mov ebx, 10
        xor ecx, ecx
.div:
        xor edx, edx
        div ebx
        push edx
        inc ecx
        test eax, eax
        jnz .div
.out:
        pop eax
        add al, '0'
        call putc
        loop .out
        popad
        ret

; puthex writes EAX as 0x followed by 8 hex digits.
puthex:
        pushad
        mov ebx, eax
        mov al, '0'
        call putc
        mov al, 'x'
        call putc
        mov ecx, 8
.digit:
        rol ebx, 4
        mov eax, ebx
        and eax, 15
        mov al, [hexdigits + eax]
        call putc
        loop .digit
        popad
        ret

section .rodata progbits alloc noexec nowrite align=4
hexdigits:      db "0123456789abcdef"
msg_hello:      db "gohv-testpayload: entered", 13, 10, 0
msg_elf_entry:  db "gohv-testpayload: entered through the ELF entry, not the PVH entry", 13, 10, 0
msg_bad_magic:  db "gohv-testpayload: bad start_info magic", 13, 10, 0
msg_prefix:     db "gohv-testpayload: ", 0
msg_start_ok:   db "start_info ok, memmap entries=", 0
msg_ram:        db ", ram=", 0
msg_kib:        db " KiB, ", 0
msg_bss_ok:     db "bss zero ok, ", 0
msg_bss_bad:    db "bss NOT zero, ", 0
msg_data_ok:    db "data ok, ", 0
msg_data_bad:   db "data CORRUPT, ", 0
msg_entry_ok:   db "entry ok", 0
msg_entry_bad:  db "entry state BAD", 0
msg_rsdp:       db ", rsdp=", 0
msg_nl:         db 13, 10, 0
msg_pass:       db "gohv-testpayload: PASS", 13, 10, 0
msg_fail:       db "gohv-testpayload: FAIL", 13, 10, 0

section .data progbits alloc noexec write align=4
bss_acc:        dd 0xffffffff
entry_good:     dd 0
data_blob:
%assign x 1
%rep DATA_WORDS
%assign x (x * 1103515245 + 12345) & 0xffffffff
        dd x
%endrep

section .bss nobits alloc noexec write align=16
        resb 256 * 1024                 ; spans many pages the loader must zero
stack:  resb 16 * 1024
stack_top:
