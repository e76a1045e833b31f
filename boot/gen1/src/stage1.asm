; gohv Gen1 loader, stage 1: the MBR boot code (bytes 0..439 of LBA 0;
; docs/boot.md, "Gen1 disk layout (MBR)").
;
; The BIOS loads LBA 0 at 0000:7C00 and jumps here with DL = boot drive.
; Stage 1 checks for the INT 13h extensions, reads the first sector of
; stage 2 (LBA 1) to 0000:8000, takes stage 2's sector count from its
; header, reads the rest and jumps to it with DL unchanged. The partition
; table stays in place at 0000:7DBE for stage 2.
;
; Stage 2 header (stage2.asm): +0 jmp short, +2 u16 sector count, +4 "GHS2".

bits 16
org 0x7c00

%define STAGE2          0x8000
%define STAGE2_MAX      64              ; sectors: 0x8000..0x10000
%define COM1            0x3f8

start:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7c00
        jmp 0:.cs_ok                    ; some BIOSes enter at 07C0:0000
.cs_ok:
        sti
        cld
        mov [drive], dl
        call com_init

        mov ah, 0x41                    ; INT 13h extensions present?
        mov bx, 0x55aa
        mov dl, [drive]
        int 0x13
        jc .no_ext
        cmp bx, 0xaa55
        jne .no_ext
        test cl, 1                      ; AH=42h supported
        jz .no_ext

        call read                       ; LBA 1, one sector, to STAGE2
        cmp dword [STAGE2 + 4], 'GHS2'
        jne .bad_s2
        mov ax, [STAGE2 + 2]
        test ax, ax
        jz .bad_s2
        cmp ax, STAGE2_MAX
        ja .bad_s2
        dec ax
        jz .go
        mov [dap.count], ax
        mov word [dap.off], STAGE2 + 512
        mov byte [dap.lba], 2
        call read
.go:
        mov dl, [drive]
        jmp 0:STAGE2

.no_ext:
        mov si, msg_no_ext
        jmp fatal
.bad_s2:
        mov si, msg_bad_s2
        jmp fatal

; read runs the DAP with AH=42h, three tries with a reset in between.
read:
        mov di, 3
.try:
        mov si, dap
        mov ah, 0x42
        mov dl, [drive]
        int 0x13
        jnc .ok
        xor ah, ah
        mov dl, [drive]
        int 0x13
        dec di
        jnz .try
        mov si, msg_read
        jmp fatal
.ok:
        ret

fatal:
        lodsb
        test al, al
        jz .halt
        push ax
        mov ah, 0x0e                    ; screen
        mov bx, 7
        int 0x10
        pop ax
        mov dx, COM1 + 5                ; COM1, bounded wait for THR empty
        mov cx, 0xffff
        mov ah, al
.wait:
        in al, dx
        test al, 0x20
        loopz .wait
        mov al, ah
        mov dx, COM1
        out dx, al
        jmp fatal
.halt:
        cli
        hlt
        jmp .halt

; com_init: COM1 at 115200 8N1, FIFO on, no interrupts.
com_init:
        mov si, com_tab
        mov dx, COM1
.next:
        lodsw                           ; al = register offset, ah = value
        cmp al, 0xff
        je .done
        mov dl, 0xf8
        add dl, al
        mov al, ah
        out dx, al
        jmp .next
.done:
        ret

com_tab:
        db 1, 0x00, 3, 0x80, 0, 0x01, 1, 0x00, 3, 0x03, 2, 0xc7, 4, 0x03, 0xff, 0

msg_no_ext:     db "gohv: BIOS lacks INT 13h extensions", 13, 10, 0
msg_bad_s2:     db "gohv: stage 2 missing or damaged", 13, 10, 0
msg_read:       db "gohv: disk read error at LBA 1 (stage 2)", 13, 10, 0

drive:  db 0x80
align 4
dap:    db 16, 0
.count: dw 1
.off:   dw STAGE2
.seg:   dw 0
.lba:   dq 1

        times 440 - ($ - $$) db 0
