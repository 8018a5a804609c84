/*
** classes.c -- size classes.
**
** Up to 128 B the classes are every 8 B, so Lua's 40 and 56 B objects (and
** every other multiple of 8) get an exact class through the 8-byte-aligned
** API; the 16-byte-aligned malloc API rounds to even multiples of 8.  Above
** 128 B there are 8 classes per doubling: a block wastes at most 1/9 of
** itself.  Every class above 128 B is a multiple of 16.
*/
#include "internal.h"

const uint32_t class_size[HAK_CLASSES] = {
  8, 16, 24, 32, 40, 48, 56, 64, 72, 80,
  88, 96, 104, 112, 120, 128, 144, 160, 176, 192,
  208, 224, 240, 256, 288, 320, 352, 384, 416, 448,
  480, 512, 576, 640, 704, 768, 832, 896, 960, 1024,
  1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2304, 2560,
  2816, 3072, 3328, 3584, 3840, 4096, 4608, 5120, 5632, 6144,
  6656, 7168, 7680, 8192, 9216, 10240, 11264, 12288, 13312, 14336,
  15360, 16384, 18432, 20480, 22528, 24576, 26624, 28672, 30720, 32768,
  /* the aligned twins: uncoloured pages (class_aligned) */
  12288, 16384, 20480, 24576, 28672, 32768,
};

/* class_of_slot[i]: the class of direct slot i, sizes 8i-7 .. 8i (slot 0:
** size 0, the 16 B class).  The slow path of a small size reads it. */
const uint8_t class_of_slot[HAK_DIRECT_SLOTS] = {
  1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
  15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23,
  23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27,
  27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31,
  31, 32, 32, 32, 32, 32, 32, 32, 32, 33, 33, 33, 33, 33, 33, 33,
  33, 34, 34, 34, 34, 34, 34, 34, 34, 35, 35, 35, 35, 35, 35, 35,
  35, 36, 36, 36, 36, 36, 36, 36, 36, 37, 37, 37, 37, 37, 37, 37,
  37, 38, 38, 38, 38, 38, 38, 38, 38, 39, 39, 39, 39, 39, 39, 39,
  39,
};

/* class_of_medium[((size - 1) >> 7) - HAK_SMALL_MAX / 128]: the class of a
** size above the direct table (1025 .. HAK_MEDIUM_MAX), whose classes are
** at least 128 B apart.  The medium sizes' fast path reads it (alloc.c). */
const uint8_t class_of_medium[HAK_MEDIUM_SLOTS] = {
  40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49, 50, 50, 51, 51,
  52, 52, 53, 53, 54, 54, 55, 55, 56, 56, 56, 56, 57, 57, 57, 57,
  58, 58, 58, 58, 59, 59, 59, 59, 60, 60, 60, 60, 61, 61, 61, 61,
  62, 62, 62, 62, 63, 63, 63, 63, 64, 64, 64, 64, 64, 64, 64, 64,
  65, 65, 65, 65, 65, 65, 65, 65, 66, 66, 66, 66, 66, 66, 66, 66,
  67, 67, 67, 67, 67, 67, 67, 67, 68, 68, 68, 68, 68, 68, 68, 68,
  69, 69, 69, 69, 69, 69, 69, 69, 70, 70, 70, 70, 70, 70, 70, 70,
  71, 71, 71, 71, 71, 71, 71, 71, 72, 72, 72, 72, 72, 72, 72, 72,
  72, 72, 72, 72, 72, 72, 72, 72, 73, 73, 73, 73, 73, 73, 73, 73,
  73, 73, 73, 73, 73, 73, 73, 73, 74, 74, 74, 74, 74, 74, 74, 74,
  74, 74, 74, 74, 74, 74, 74, 74, 75, 75, 75, 75, 75, 75, 75, 75,
  75, 75, 75, 75, 75, 75, 75, 75, 76, 76, 76, 76, 76, 76, 76, 76,
  76, 76, 76, 76, 76, 76, 76, 76, 77, 77, 77, 77, 77, 77, 77, 77,
  77, 77, 77, 77, 77, 77, 77, 77, 78, 78, 78, 78, 78, 78, 78, 78,
  78, 78, 78, 78, 78, 78, 78, 78, 79, 79, 79, 79, 79, 79, 79, 79,
  79, 79, 79, 79, 79, 79, 79, 79,
};

/*
** The smallest class holding `size` (size <= HAK_MEDIUM_MAX).  Size 0 maps
** to the 16-byte class so that malloc(0) is 16-byte aligned too.
*/
unsigned class_of(size_t size) {
  if (size <= 128) return size <= 8 ? (size == 0 ? 1 : 0) : (unsigned)((size + 7) >> 3) - 1;
  unsigned b = 63 - (unsigned)__builtin_clzll((unsigned long long)(size - 1)); /* 2^b < size <= 2^(b+1) */
  unsigned step_shift = b - 3;
  size_t k = ((size - ((size_t)1 << b)) + ((size_t)1 << step_shift) - 1) >> step_shift; /* 1..8 */
  return 16 + (b - 7) * 8 + (unsigned)k - 1;
}

/*
** The size of a large block holding `size` (up to HAK_LARGE_MAX): rounded
** like the classes, 8 steps per doubling, so it wastes at most 1/9 too.
** Smaller sizes (aligned requests) get the smallest large size.
*/
size_t class_large_size(size_t size) {
  if (size <= HAK_MEDIUM_MAX) size = HAK_MEDIUM_MAX + 1;
  unsigned top = 63 - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
  size_t step = (size_t)1 << (top - 3);
  return (size + step - 1) & ~(step - 1);
}

/*
** One slice up to 8 KiB blocks (8 to 64 blocks a page); 16 slices, 1 MiB,
** above (32 to 113).  Why so big above 8 KiB: a program whose live set of
** a class is steady (a server's buffers, glibc's thread benchmark) keeps
** every page of the class nearly full, and each free into a full page and
** each allocation that fills one moves a page between queues; with the 8
** to 28 blocks of 256 KiB pages that was a move every few operations
** (bench/threads/tight T=1: 0.0949 s, now 0.0666, tcmalloc 0.0585; peak
** RSS 13.6 MiB, now 8.2).  Only carved blocks are ever resident.  Bigger
** pages below 8 KiB too (at least 128 blocks each) were a little faster
** still (0.0603) but held more: the thread soak ended at 114-115 MiB of
** RSS against 93-113, hakmem committed 178 MiB against 141.
*/
unsigned class_page_slices(unsigned cls) {
  return class_size[cls] <= HAK_PAGE_SMALL_MAX ? 1 : HAK_PAGE_MEDIUM_SLICES;
}

/*
** Pages up to HAK_PAGE_SMALL_MAX start on a slice boundary (64 KiB), so the
** blocks of such a class whose size is a multiple of `align` are all
** aligned to it: aligned allocation needs no padding and no interior
** pointers.  The bigger classes' pages are coloured (page_colour) and keep
** only 64-byte alignment; a larger alignment of those sizes takes an
** aligned twin (uncoloured pages of the 4 KiB multiples, a block wasting
** at most a third of itself: 4 KiB-aligned I/O buffers of 9-32 KiB), or,
** aligned above what a twin's size is a multiple of, a large block's span.
*/
unsigned class_aligned(size_t size, size_t align) {
  if (size > HAK_MEDIUM_MAX) return HAK_CLASSES;
  unsigned c = class_of(size);
  for (; c < HAK_CLASS_TWIN_FIRST && class_size[c] <= HAK_PAGE_SMALL_MAX; c++)
    if ((class_size[c] & (align - 1)) == 0) return c;
  for (; c < HAK_CLASS_TWIN_FIRST && align <= HAK_PAGE_COLOUR_STEP; c++)
    if ((class_size[c] & (align - 1)) == 0) return c;
  for (c = HAK_CLASS_TWIN_FIRST; c < HAK_CLASSES; c++)
    if (class_size[c] >= size && (class_size[c] & (align - 1)) == 0) return c;
  return HAK_CLASSES;
}
