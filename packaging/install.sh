#!/bin/sh
#
# packaging/install.sh -- what `ninja install` runs: the libraries (the
# runtime's libhakrt.a included), the headers (hakmem.h, hakl.h, hakrt.h),
# hklua and the Lua module under $DESTDIR$PREFIX, and the
# pkg-config files written from hakmem.pc.in, hakmem-lua.pc.in and hakrt.pc.in beside
# this script.
#
# build.ninja passes what configure.py found:
#   HAKMEM_BUILDDIR      the build directory (absolute)
#   HAKMEM_SRCDIR        the source tree (absolute)
#   HAKMEM_PREFIX        the prefix given to configure.py
#   HAKMEM_MULTIARCH     e.g. x86_64-linux-gnu: libraries go in lib/<it>
#   HAKMEM_LUA_CPATH     lua5.4's package.cpath
#   HAKMEM_VERSION       the version the .pc files state
#   HAKMEM_LIBS_PRIVATE  what a static link of libhakmem.a also needs
# PREFIX and DESTDIR from the environment win, as with make.
#
set -eu
PREFIX=${PREFIX:-$HAKMEM_PREFIX}
DESTDIR=${DESTDIR:-}
B=$HAKMEM_BUILDDIR
S=$HAKMEM_SRCDIR
libdir=$PREFIX/lib/$HAKMEM_MULTIARCH
includedir=$PREFIX/include
bindir=$PREFIX/bin

# The Lua module goes where lua5.4 looks.
case ";$HAKMEM_LUA_CPATH;" in
  *";$libdir/lua/5.4/?.so;"*) luadir=$libdir/lua/5.4 ;;
  *";$PREFIX/lib/lua/5.4/?.so;"*) luadir=$PREFIX/lib/lua/5.4 ;;
  *) luadir=$libdir/lua/5.4
     echo "note: $luadir is not in lua5.4's package.cpath: set LUA_CPATH" ;;
esac

install -d "$DESTDIR$libdir/pkgconfig" "$DESTDIR$includedir" "$DESTDIR$bindir" "$DESTDIR$luadir"
install -m 644 "$B/libhakmem.a" "$B/libhakmem_lua.a" "$B/libhakrt.a" "$DESTDIR$libdir/"
install -m 755 "$B/libhakmem.so" "$B/libhakmem-override.so" "$DESTDIR$libdir/"
install -m 644 "$S/hakmem/hakmem.h" "$S/lua_glue/hakl.h" "$S/runtime/hakrt.h" "$DESTDIR$includedir/"
install -m 755 "$B/lua/hakmem.so" "$DESTDIR$luadir/"
install -m 755 "$B/hklua" "$DESTDIR$bindir/"

# A value for the right-hand side of a sed s|||: \, | and & escaped.
sed_value() {
  printf '%s\n' "$1" | sed -e 's/[\\|&]/\\&/g'
}
for pc in hakmem hakmem-lua hakrt; do
  sed -e "s|@prefix@|$(sed_value "$PREFIX")|g" \
      -e "s|@libdir@|$(sed_value "$libdir")|g" \
      -e "s|@includedir@|$(sed_value "$includedir")|g" \
      -e "s|@version@|$(sed_value "$HAKMEM_VERSION")|g" \
      -e "s|@libs_private@|$(sed_value "$HAKMEM_LIBS_PRIVATE")|g" \
      "$S/packaging/$pc.pc.in" > "$DESTDIR$libdir/pkgconfig/$pc.pc"
done
echo "installed hakmem into $DESTDIR$PREFIX"
