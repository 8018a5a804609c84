-- Shutdown with the collector busy: 40 tasks with heaps of a few MiB
-- finish at the end and nobody joins them; hakrt_wait returns only once
-- their states are closed, and nothing may be left in hakmem.
local rt = require "hakrt"
local scale = tonumber((...)) or 1
for i = 1, 40 // scale do
  rt.spawn(function(scale)
    local t = {}
    for j = 1, 30000 // scale do t[j] = {j, "v" .. j} end
    setmetatable(t, {__gc = function() end})
    return #t
  end, scale)
end
print("burst ok")
