-- A module for require and -l.
local M = {}
function M.hello(who) return "hello, " .. who end
M.loaded_as = ...
return M
