; Test kernel for the Gen2 loader's OVMF boot test: a flat 32-bit PVH entry
; linked at 0x10010000 (where TamaGo kernels live). It checks the hand-off
; state and hvm_start_info, prints what it found on COM1 in a form the Go
; test parses, and exits QEMU through isa-debug-exit (port 0xf4):
; 0x10 -> exit status 33 (all checks passed), 0x11 -> 35 (a check failed).
;
; Assemble: nasm -f bin -o payload.bin payload.asm
;
; The GKI built by the test gives this file one segment whose memory size
; is the file size + BSS_SIZE + STACK_SIZE: the first BSS_SIZE bytes past
; the file must read as zero, the stack lives above them.

BITS 32
org 0x10010000

COM1        equ 0x3f8
DEBUG_EXIT  equ 0xf4
BSS_SIZE    equ 0x10000
STACK_SIZE  equ 0x1000
SI_MAGIC    equ 0x336ec578

entry:
    mov ebp, ebx                    ; start_info
    mov esp, payload_end + BSS_SIZE + STACK_SIZE
    xor edi, edi                    ; edi = number of failed checks
    call com_init
    mov esi, m_enter
    call puts

    ; hand-off state: PE on, PG off, IF off, EFER.LME/LMA off
    mov esi, m_mode_ok
    mov eax, cr0
    test eax, 1
    jz .mode_bad
    test eax, 0x80000000
    jnz .mode_bad
    pushfd
    pop eax
    test eax, 0x200
    jnz .mode_bad
    mov ecx, 0xc0000080
    rdmsr
    test eax, 0x500
    jz .mode_done
.mode_bad:
    mov esi, m_mode_bad
    inc edi
.mode_done:
    call puts

    ; start_info header
    cmp dword [ebp], SI_MAGIC
    jne .si_bad
    cmp dword [ebp + 4], 1
    jb .si_bad
    mov esi, m_si_ok
    call puts
    jmp .memmap
.si_bad:
    mov esi, m_si_bad
    call puts
    jmp exit_fail

.memmap:
    mov esi, m_count
    call puts
    mov eax, [ebp + 48]
    call hex32
    call newline
    cmp dword [ebp + 44], 0         ; memmap must be reachable in 32-bit mode
    jne .mm_bad
    mov ebx, [ebp + 40]
    mov ecx, [ebp + 48]
    test ecx, ecx
    jz .mm_bad
.entry:
    push ecx
    mov esi, m_e820
    call puts
    mov eax, [ebx + 4]
    call hex32
    mov eax, [ebx]
    call hex32
    mov al, ' '
    call putc
    mov eax, [ebx + 12]
    call hex32
    mov eax, [ebx + 8]
    call hex32
    mov al, ' '
    call putc
    mov eax, [ebx + 16]
    call hex32
    call newline
    add ebx, 24
    pop ecx
    loop .entry
    jmp .rsdp
.mm_bad:
    mov esi, m_mm_bad
    call puts
    inc edi

    ; rsdp_paddr: "RSD PTR " there, first 20 bytes sum to 0
.rsdp:
    mov esi, m_rsdp
    call puts
    mov eax, [ebp + 36]
    call hex32
    mov eax, [ebp + 32]
    call hex32
    cmp dword [ebp + 36], 0
    jne .rsdp_bad
    mov ebx, [ebp + 32]
    test ebx, ebx
    jz .rsdp_bad
    cmp dword [ebx], 'RSD '
    jne .rsdp_bad
    cmp dword [ebx + 4], 'PTR '
    jne .rsdp_bad
    xor eax, eax
    mov ecx, 20
.sum:
    add al, [ebx + ecx - 1]
    loop .sum
    test al, al
    jnz .rsdp_bad
    mov esi, m_rsdp_ok
    jmp .rsdp_done
.rsdp_bad:
    mov esi, m_rsdp_bad
    inc edi
.rsdp_done:
    call puts

    ; bss (memory size beyond the file size) must be zero
    mov ebx, payload_end
    xor eax, eax
.bss:
    or eax, [ebx]
    add ebx, 4
    cmp ebx, payload_end + BSS_SIZE
    jb .bss
    mov esi, m_bss_ok
    test eax, eax
    jz .bss_done
    mov esi, m_bss_bad
    inc edi
.bss_done:
    call puts

    test edi, edi
    jnz exit_fail
    mov esi, m_pass
    call puts
    mov al, 0x10
    out DEBUG_EXIT, al
    jmp halt
exit_fail:
    mov esi, m_fail
    call puts
    mov al, 0x11
    out DEBUG_EXIT, al
halt:
    hlt
    jmp halt

com_init:
    mov dx, COM1 + 1
    xor al, al
    out dx, al                      ; no interrupts
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al                      ; DLAB
    mov dx, COM1
    mov al, 1
    out dx, al                      ; 115200 baud
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 3
    out dx, al                      ; 8N1
    ret

; putc(al)
putc:
    push edx
    push eax
    mov dx, COM1 + 5
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    pop eax
    mov dx, COM1
    out dx, al
    pop edx
    ret

; puts(esi = NUL-terminated string)
puts:
    push eax
.next:
    lodsb
    test al, al
    jz .done
    call putc
    jmp .next
.done:
    pop eax
    ret

newline:
    mov esi, m_nl
    jmp puts

; hex32(eax): 8 hex digits
hex32:
    push ecx
    push eax
    mov ecx, 8
.digit:
    rol eax, 4
    push eax
    and eax, 15
    mov al, [hexdigits + eax]
    call putc
    pop eax
    loop .digit
    pop eax
    pop ecx
    ret

hexdigits:  db '0123456789abcdef'
m_enter:    db 'gohv-gen2-payload: entered', 13, 10, 0
m_mode_ok:  db 'mode ok', 13, 10, 0
m_mode_bad: db 'mode BAD', 13, 10, 0
m_si_ok:    db 'start_info ok', 13, 10, 0
m_si_bad:   db 'start_info BAD', 13, 10, 0
m_count:    db 'memmap entries ', 0
m_e820:     db 'e820 ', 0
m_mm_bad:   db 'memmap BAD', 13, 10, 0
m_rsdp:     db 'rsdp ', 0
m_rsdp_ok:  db ' ok', 13, 10, 0
m_rsdp_bad: db ' BAD', 13, 10, 0
m_bss_ok:   db 'bss ok', 13, 10, 0
m_bss_bad:  db 'bss BAD', 13, 10, 0
m_pass:     db 'gohv-gen2-payload: PASS', 13, 10, 0
m_fail:     db 'gohv-gen2-payload: FAIL', 13, 10, 0
m_nl:       db 13, 10, 0

    align 16, db 0
payload_end:
