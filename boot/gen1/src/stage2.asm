; gohv Gen1 loader, stage 2 (LBA 1..; docs/boot.md, "Gen1 disk layout").
;
; Loaded by stage 1 at 0000:8000 with DL = boot drive. It finds the active
; partition of type 0xDA, checks the GKI header (docs/boot.md, "The gohv
; kernel image"), collects the E820 map, enables A20, streams the image
; through a low bounce buffer while computing its CRC-32 and copying the
; parts that belong to segments (in unreal mode), zeroes each bss, builds
; hvm_start_info, finds the RSDP and enters the kernel's PVH entry in 32-bit
; flat protected mode, paging off, interrupts off, EBX = start_info.
;
; Low memory used (all below 1 MiB, never inside a kernel segment):
;   0x0600 GKI header sector     0x1000 hvm_start_info   0x1040 memmap
;   0x2000 CRC-32 table          0x7C00 MBR (partition table), stack below
;   0x8000 stage 2               0x20000 bounce buffer (CHUNK sectors)

bits 16
org 0x8000

%define MBR_PARTS       0x7dbe
%define HDR             0x0600
%define START_INFO      0x1000
%define MEMMAP          0x1040
%define MEMMAP_MAX      128
%define CRC_TABLE       0x2000
%define BOUNCE_SEG      0x2000
%define BOUNCE          0x20000
%define CHUNK           64              ; sectors per read (32 KiB)
%define COM1            0x3f8
%define PART_TYPE       0xda            ; gen1.KernelPartitionType

; GKI header offsets (docs/boot.md, "The gohv kernel image (GKI)").
%define GKI_VERSION     8
%define GKI_HDRSIZE     12
%define GKI_ENTRY       16
%define GKI_COUNT       20
%define GKI_TOTAL       24
%define GKI_CRC         28
%define GKI_SEGS        32
%define SEG_PADDR       0
%define SEG_FOFF        8
%define SEG_FSIZE       12
%define SEG_MSIZE       16
%define SEG_SIZE        24

; hvm_start_info offsets (Xen arch-x86/hvm/start_info.h).
%define SI_MAGIC        0x336ec578

header:
        jmp short main
        dw SECTORS                      ; read by stage 1
        db "GHS2"

main:
        cli
        xor ax, ax
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov sp, 0x7c00
        sti
        cld
        mov [drive], dl
        call com_init
        mov si, msg_hello
        call puts

; --- find the kernel partition ---------------------------------------------
        mov si, MBR_PARTS
        mov cx, 4
.part:
        cmp byte [si], 0x80
        jne .part_next
        cmp byte [si + 4], PART_TYPE
        je .part_found
.part_next:
        add si, 16
        loop .part
        mov si, msg_no_part
        jmp fatal
.part_found:
        mov eax, [si + 8]
        mov [part_lba], eax
        mov eax, [si + 12]
        mov [part_sectors], eax
        mov si, msg_part
        call puts
        mov eax, [part_lba]
        call putdec
        call crlf

; --- read and check the GKI header ------------------------------------------
        mov eax, [part_lba]
        mov [dap.lba], eax
        mov word [dap.count], 1
        mov word [dap.off], HDR
        mov word [dap.seg], 0
        call read
        call check_header

; --- E820 -------------------------------------------------------------------
        call e820
        mov si, msg_e820
        call puts
        mov eax, [mm_count]
        call putdec
        call crlf
        call check_fit

; --- A20 --------------------------------------------------------------------
        call a20

; --- stream the image -------------------------------------------------------
        call crc_init
        mov si, msg_load
        call puts
        mov eax, [HDR + GKI_TOTAL]
        call putdec
        mov si, msg_bytes
        call puts
        mov eax, [HDR + GKI_HDRSIZE]
        mov [file_off], eax
.chunk:
        mov eax, [file_off]
        cmp eax, [HDR + GKI_TOTAL]
        jae .loaded
        mov ecx, [HDR + GKI_TOTAL]
        sub ecx, eax
        shr ecx, 9                      ; sectors left
        cmp ecx, CHUNK
        jbe .count_ok
        mov ecx, CHUNK
.count_ok:
        mov [dap.count], cx
        shl ecx, 9
        mov [chunk_len], ecx
        shr eax, 9
        add eax, [part_lba]
        mov [dap.lba], eax
        mov word [dap.off], 0
        mov word [dap.seg], BOUNCE_SEG
        call read
        call unreal                     ; leaves interrupts off
        call crc_chunk
        call copy_chunk
        sti
        mov eax, [chunk_len]
        add [file_off], eax
        jmp .chunk
.loaded:
        mov eax, [crc]
        not eax
        cmp eax, [HDR + GKI_CRC]
        je .crc_ok
        mov si, msg_bad_crc
        jmp fatal
.crc_ok:
        call unreal
        call zero_bss
        call build_start_info
        call find_rsdp
        sti
        mov si, msg_jump
        call puts
        mov eax, [HDR + GKI_ENTRY]
        call puthex
        call crlf

; --- enter the kernel -------------------------------------------------------
        cli
        lgdt [gdtr]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp dword 0x08:pm32

bits 32
pm32:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov fs, ax
        mov gs, ax
        mov ss, ax
        mov esp, 0x7c00
        mov eax, [HDR + GKI_ENTRY]
        mov ebx, START_INFO
        xor ecx, ecx
        xor edx, edx
        xor esi, esi
        xor edi, edi
        xor ebp, ebp
        jmp eax
bits 16

; check_header validates what the loader relies on; kimage.Parse is the
; full check, done by the image builder.
check_header:
        cmp dword [HDR], 'GOHV'
        jne .bad
        cmp dword [HDR + 4], 'KIMG'
        jne .bad
        cmp dword [HDR + GKI_VERSION], 1
        jne .bad
        mov ecx, [HDR + GKI_COUNT]
        test ecx, ecx
        jz .bad
        cmp ecx, 16
        ja .bad
        mov eax, [HDR + GKI_HDRSIZE]
        test eax, 511
        jnz .bad
        imul edx, ecx, SEG_SIZE
        add edx, GKI_SEGS
        cmp eax, edx
        jb .bad
        mov ebx, [HDR + GKI_TOTAL]
        test ebx, 511
        jnz .bad
        cmp eax, ebx
        ja .bad
        mov edx, ebx
        shr edx, 9
        cmp edx, [part_sectors]
        ja .bad
        cmp dword [HDR + GKI_ENTRY], 0x100000
        jb .bad
        mov si, HDR + GKI_SEGS
.seg:
        cmp dword [si + SEG_PADDR + 4], 0
        jne .bad
        cmp dword [si + SEG_MSIZE + 4], 0
        jne .bad
        mov edx, [si + SEG_PADDR]
        cmp edx, 0x100000
        jb .bad
        mov edi, [si + SEG_MSIZE]
        test edi, edi
        jz .bad
        cmp edi, [si + SEG_FSIZE]
        jb .bad
        add edx, edi
        jc .bad                         ; past 4 GiB
        mov edx, [si + SEG_FOFF]
        test edx, 511
        jnz .bad
        cmp edx, eax
        jb .bad                         ; inside the header
        mov edi, ebx
        sub edi, edx
        jb .bad                         ; past the end
        cmp [si + SEG_FSIZE], edi
        ja .bad
        mov edx, [HDR + GKI_ENTRY]      ; entry inside this segment's bytes?
        sub edx, [si + SEG_PADDR]
        jb .next
        cmp edx, [si + SEG_FSIZE]
        jae .next
        mov byte [entry_found], 1
.next:
        add si, SEG_SIZE
        loop .seg
        cmp byte [entry_found], 1
        jne .bad
        ret
.bad:
        mov si, msg_bad_hdr
        jmp fatal

; e820 fills MEMMAP with {addr u64, size u64, type u32, reserved u32}.
e820:
        mov di, MEMMAP
        xor ebx, ebx
        mov dword [mm_count], 0
.next:
        mov dword [di + 20], 1          ; ACPI 3.0 attributes: "valid"
        mov eax, 0xe820
        mov ecx, 24
        mov edx, 'PAMS'
        int 0x15
        jc .end
        cmp eax, 'PAMS'
        jne .end
        cmp cl, 24
        jb .keep
        test byte [di + 20], 1          ; ACPI 3.0: ignore this entry
        jz .skip
.keep:
        mov eax, [di + 8]
        or eax, [di + 12]
        jz .skip
        mov dword [di + 20], 0
        add di, SEG_SIZE
        inc dword [mm_count]
        cmp dword [mm_count], MEMMAP_MAX
        jae .end
.skip:
        test ebx, ebx
        jnz .next
.end:
        cmp dword [mm_count], 0
        je .none
        ret
.none:
        mov si, msg_no_e820
        jmp fatal

; check_fit warns when a segment does not lie inside one E820 RAM range:
; a VM with too little memory then gets a message before the kernel dies
; silently. Only a warning, so an unusual but valid map cannot stop a boot.
check_fit:
        mov si, HDR + GKI_SEGS
        mov cx, [HDR + GKI_COUNT]
.seg:
        mov eax, [si + SEG_PADDR]
        mov edx, eax
        add edx, [si + SEG_MSIZE]       ; segment end (no carry: checked)
        mov di, MEMMAP
        mov bx, [mm_count]
.range:
        cmp dword [di + 16], 1
        jne .range_next
        cmp dword [di + 4], 0
        jne .range_next
        cmp [di], eax
        ja .range_next
        mov ebp, edx
        sub ebp, [di]                   ; bytes needed from the range base
        cmp dword [di + 12], 0
        jne .fits
        cmp [di + 8], ebp
        jae .fits
.range_next:
        add di, SEG_SIZE
        dec bx
        jnz .range
        push si
        mov si, msg_no_fit
        call puts
        pop si
        call puthex
        call crlf
.fits:
        add si, SEG_SIZE
        loop .seg
        ret

; a20 enables the A20 line through the BIOS, then port 0x92, and checks.
a20:
        mov ax, 0x2401
        int 0x15
        call a20_on
        jnc .ok
        in al, 0x92
        or al, 2
        and al, 0xfe                    ; bit 0 would reset the machine
        out 0x92, al
        call a20_on
        jnc .ok
        mov si, msg_no_a20
        jmp fatal
.ok:
        ret

; a20_on clears CF when 0000:0500 and FFFF:0510 are different bytes.
a20_on:
        push ds
        push es
        xor ax, ax
        mov ds, ax
        dec ax
        mov es, ax
        mov bl, [0x500]
        mov bh, [es:0x510]
        mov byte [0x500], 0x00
        mov byte [es:0x510], 0xff
        cmp byte [0x500], 0xff
        mov [0x500], bl
        mov [es:0x510], bh
        pop es
        pop ds
        je .off
        clc
        ret
.off:
        stc
        ret

; unreal loads DS and ES with 4 GiB limits (base 0) and returns to real
; mode with interrupts off. BIOS calls may reset the limits, so it is
; called again after each one.
unreal:
        cli
        push ds
        push es
        lgdt [gdtr]
        mov eax, cr0
        or al, 1
        mov cr0, eax
        jmp short $ + 2
        mov bx, 0x10
        mov ds, bx
        mov es, bx
        and al, 0xfe
        mov cr0, eax
        pop es
        pop ds
        ret

; crc_init builds the CRC-32 (IEEE, reflected 0xEDB88320) table.
crc_init:
        mov dword [crc], 0xffffffff
        xor ebx, ebx
        mov di, CRC_TABLE
.entry:
        mov eax, ebx
        mov cx, 8
.bit:
        shr eax, 1
        jnc .nopoly
        xor eax, 0xedb88320
.nopoly:
        loop .bit
        stosd
        inc bx
        cmp bx, 256
        jb .entry
        ret

; crc_chunk folds the bounce buffer into crc (unreal mode).
crc_chunk:
        mov esi, BOUNCE
        mov ecx, [chunk_len]
        mov eax, [crc]
        xor ebx, ebx
.byte:
        mov bl, [esi]
        xor bl, al
        shr eax, 8
        xor eax, [CRC_TABLE + ebx * 4]
        inc esi
        dec ecx
        jnz .byte
        mov [crc], eax
        ret

; copy_chunk copies the part of the bounce buffer ([file_off, +chunk_len)
; of the image) that overlaps each segment's file range to its paddr.
copy_chunk:
        mov bp, HDR + GKI_SEGS
        mov dx, [HDR + GKI_COUNT]
.seg:
        mov eax, [file_off]             ; start = max(file_off, foff)
        mov ebx, [bp + SEG_FOFF]
        cmp eax, ebx
        jae .s
        mov eax, ebx
.s:
        mov ecx, [file_off]             ; end = min(file_off+len, foff+fsize)
        add ecx, [chunk_len]
        add ebx, [bp + SEG_FSIZE]
        cmp ecx, ebx
        jbe .e
        mov ecx, ebx
.e:
        cmp eax, ecx
        jae .next
        sub ecx, eax                    ; length
        mov esi, eax
        sub esi, [file_off]
        add esi, BOUNCE
        mov edi, eax
        sub edi, [bp + SEG_FOFF]
        add edi, [bp + SEG_PADDR]
        a32 rep movsb
.next:
        add bp, SEG_SIZE
        dec dx
        jnz .seg
        ret

; zero_bss clears [paddr+fsize, paddr+msize) of each segment (unreal mode).
zero_bss:
        mov bp, HDR + GKI_SEGS
        mov dx, [HDR + GKI_COUNT]
.seg:
        mov edi, [bp + SEG_PADDR]
        add edi, [bp + SEG_FSIZE]
        mov ecx, [bp + SEG_MSIZE]
        sub ecx, [bp + SEG_FSIZE]
        xor al, al
        a32 rep stosb
        add bp, SEG_SIZE
        dec dx
        jnz .seg
        ret

build_start_info:
        mov di, START_INFO
        mov cx, 56 / 2
        xor ax, ax
        rep stosw
        mov dword [START_INFO], SI_MAGIC
        mov dword [START_INFO + 4], 1   ; version
        mov dword [START_INFO + 40], MEMMAP
        mov eax, [mm_count]
        mov [START_INFO + 48], eax
        ret

; find_rsdp scans the first KiB of the EBDA, then 0xE0000-0xFFFFF, on
; 16-byte boundaries for "RSD PTR " with a valid ACPI 1.0 checksum
; (unreal mode).
find_rsdp:
        movzx esi, word [0x40e]
        shl esi, 4
        jz .bios
        lea edx, [esi + 1024]
        call .scan
        jnc .found
.bios:
        mov esi, 0xe0000
        mov edx, 0x100000
        call .scan
        jc .done
.found:
        mov [START_INFO + 32], esi
.done:
        ret
.scan:
        cmp dword [esi], 'RSD '
        jne .scan_next
        cmp dword [esi + 4], 'PTR '
        jne .scan_next
        xor ax, ax
        xor ebx, ebx
.sum:
        add al, [esi + ebx]
        inc bx
        cmp bx, 20
        jb .sum
        test al, al
        jnz .scan_next
        clc
        ret
.scan_next:
        add esi, 16
        cmp esi, edx
        jb .scan
        stc
        ret

; read runs the DAP with AH=42h, three tries with a disk reset in between.
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
        call puts
        mov eax, [dap.lba]
        call putdec
        call crlf
        jmp halt
.ok:
        ret

fatal:
        call puts
halt:
        cli
        hlt
        jmp halt

; com_init: COM1 at 115200 8N1, FIFO on, no interrupts.
com_init:
        mov si, com_tab
.next:
        lodsw                           ; al = register offset, ah = value
        cmp al, 0xff
        je .done
        mov dx, COM1
        add dl, al
        mov al, ah
        out dx, al
        jmp .next
.done:
        ret

; putc writes AL to the screen (INT 10h) and COM1.
putc:
        pushad
        push ax
        mov ah, 0x0e
        mov bx, 7
        int 0x10
        pop ax
        mov ah, al
        mov dx, COM1 + 5
        mov cx, 0xffff
.wait:
        in al, dx
        test al, 0x20
        loopz .wait
        mov al, ah
        mov dx, COM1
        out dx, al
        popad
        ret

puts:
        push ax
        push si
.next:
        lodsb
        test al, al
        jz .done
        call putc
        jmp .next
.done:
        pop si
        pop ax
        ret

crlf:
        push si
        mov si, msg_crlf
        call puts
        pop si
        ret

; putdec writes EAX in decimal.
putdec:
        pushad
        mov ebx, 10
        xor cx, cx
.div:
        xor edx, edx
        div ebx
        push dx
        inc cx
        test eax, eax
        jnz .div
.out:
        pop ax
        add al, '0'
        call putc
        loop .out
        popad
        ret

; puthex writes EAX as 0x and 8 hex digits.
puthex:
        pushad
        mov ebx, eax
        mov al, '0'
        call putc
        mov al, 'x'
        call putc
        mov cx, 8
.digit:
        rol ebx, 4
        mov al, bl
        and al, 15
        add al, '0'
        cmp al, '9'
        jbe .p
        add al, 'a' - '0' - 10
.p:
        call putc
        loop .digit
        popad
        ret

com_tab:
        db 1, 0x00, 3, 0x80, 0, 0x01, 1, 0x00, 3, 0x03, 2, 0xc7, 4, 0x03, 0xff, 0

msg_hello:      db "gohv: stage 2", 13, 10, 0
msg_part:       db "gohv: kernel partition at LBA ", 0
msg_e820:       db "gohv: E820 entries ", 0
msg_load:       db "gohv: loading kernel image, ", 0
msg_bytes:      db " bytes", 13, 10, 0
msg_jump:       db "gohv: entering kernel at ", 0
msg_crlf:       db 13, 10, 0
msg_no_part:    db "gohv: no gohv kernel partition (active, type 0xDA)", 13, 10, 0
msg_bad_hdr:    db "gohv: bad kernel image (header)", 13, 10, 0
msg_bad_crc:    db "gohv: bad kernel image (CRC-32 mismatch)", 13, 10, 0
msg_no_e820:    db "gohv: no E820 memory map from the BIOS", 13, 10, 0
msg_no_a20:     db "gohv: cannot enable A20", 13, 10, 0
msg_no_fit:     db "gohv: warning: kernel does not fit in RAM (too little memory?), segment at ", 0
msg_read:       db "gohv: disk read error at LBA ", 0

align 8
gdt:
        dq 0
        dq 0x00cf9a000000ffff           ; 0x08: code, flat 4 GiB, 32-bit
        dq 0x00cf92000000ffff           ; 0x10: data, flat 4 GiB
gdtr:
        dw gdtr - gdt - 1
        dd gdt

align 4
dap:    db 16, 0
.count: dw 0
.off:   dw 0
.seg:   dw 0
.lba:   dq 0

drive:          db 0
entry_found:    db 0
align 4
part_lba:       dd 0
part_sectors:   dd 0
mm_count:       dd 0
file_off:       dd 0
chunk_len:      dd 0
crc:            dd 0

end:
SECTORS equ (end - $$ + 511) / 512
        times SECTORS * 512 - (end - $$) db 0
