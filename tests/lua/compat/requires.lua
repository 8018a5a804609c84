-- require through package.path, and a missing module (caught).
package.path = arg[1] .. "/?.lua;" .. package.path
local m = require "mod_a"
print(m.hello("world"), m.loaded_as, package.loaded.mod_a == m)
local ok, err = pcall(require, "no_such_module_xyz")
print(ok, (err:match("module 'no_such_module_xyz' not found")))
