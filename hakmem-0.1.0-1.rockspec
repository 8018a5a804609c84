-- The `hakmem` Lua module for LuaRocks: in a source checkout,
--   luarocks --lua-version=5.4 make            (Debian's luarocks; no network)
-- builds lua/hakmem.so's twin and installs it where lua5.4 finds it, so that
-- `require "hakmem"` switches the running state to hakmem.
--
-- The runtime's module (`hakrt`) is not here: it only works inside a task
-- of an hklua --threads runtime, never from a plain lua5.4.
--
-- The sources are configure.py's CORE_SOURCES and GLUE_SOURCES (configure.py
-- stops when the two lists differ), built with the flags of its release
-- mode and linked as configure.py links lua/hakmem.so.

rockspec_format = "3.0"
package = "hakmem"
version = "0.1.0-1"
source = {
   url = "git+file://.",  -- `luarocks make` builds the checkout it runs in
}
description = {
   summary = "A memory allocator for Lua 5.4 states, as a lua_Alloc",
   detailed = [[
      require "hakmem" makes hakmem the running state's allocator: exact
      8-byte size classes for Lua's objects, sized frees, an account of the
      state's memory by Lua type and an optional limit. hakmem.stats(),
      hakmem.limit([bytes]) and hakmem.collect().
   ]],
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   ATOMIC_OPS = { header = "atomic_ops.h", library = "atomic_ops" },
}

local sources = {
   "hakmem/os.c",
   "hakmem/segment.c",
   "hakmem/page.c",
   "hakmem/secure.c",
   "hakmem/remote.c",
   "hakmem/keep.c",
   "hakmem/heap_figures.c",
   "hakmem/check.c",
   "hakmem/heap.c",
   "hakmem/alloc.c",
   "hakmem/huge.c",
   "hakmem/classes.c",
   "hakmem/thread.c",
   "hakmem/stats.c",
   "hakmem/options.c",
   "hakmem/segment_map.c",
   "lua_glue/hakl_alloc.c",
   "lua_glue/hakl_state.c",
   "lua_glue/hakl_module.c",
   "lua_glue/hakl_region.c",
   "lua_glue/hakl_core.c",
}
-- -Bsymbolic: the module's calls stay on its own copy of the core in a
-- host that exports another; -z nodelete: lua_close dlcloses the module
-- while its blocks and its thread-exit destructor still need its code.
local command = "mkdir -p build/luarocks && $(CC) $(CFLAGS) -std=c11 -D_GNU_SOURCE"
   .. " -DNDEBUG -DHAK_DEBUG=0 -fvisibility=hidden -pthread"
   .. " -Ihakmem -Ilua_glue -I$(LUA_INCDIR) -I$(ATOMIC_OPS_INCDIR)"
   .. " $(LIBFLAG) -Wl,-soname,hakmem.so -Wl,-Bsymbolic -Wl,-z,nodelete"
   .. " -Wl,--exclude-libs,ALL -o build/luarocks/hakmem.so"
for i = 1, #sources do
   command = command .. " " .. sources[i]
end

build = {
   type = "command",
   build_command = command .. " -L$(ATOMIC_OPS_LIBDIR) -latomic_ops",
   install = {
      lib = { hakmem = "build/luarocks/hakmem.so" },
   },
}
