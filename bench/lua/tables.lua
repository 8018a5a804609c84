-- tables.lua -- tables that grow and shrink: array parts grown by appends
-- and shrunk by removals, hash parts filled with string and integer keys
-- and emptied again, sparse tables, table.insert at the front, table.sort,
-- and table.move between arrays.  Realloc of array parts and rebuilds of
-- hash parts (a new block each time) are the allocator's work here.
--
-- Usage: lua tables.lua [rounds]   (default 1200)
-- Self-check: every sum and count against its closed form.

local N = tonumber(arg and arg[1]) or 1200

local function fail(fmt, ...)
  error("tables: " .. string.format(fmt, ...))
end

local keys = {}
for i = 1, 4096 do keys[i] = "key" .. i end

local checksum = 0
for round = 1, N do
  local n = 1000 + (round * 37) % 3000

  -- Array part: append n, remove from the end down to n/4, append again.
  local a = {}
  for i = 1, n do a[#a + 1] = i end
  for _ = 1, n - n // 4 do a[#a] = nil end
  if #a ~= n // 4 then fail("round %d: array length %d", round, #a) end
  for i = #a + 1, n do a[i] = i * 2 end
  local s = 0
  for i = 1, #a do s = s + a[i] end
  local q = n // 4
  local want = q * (q + 1) // 2 + (n * (n + 1) - q * (q + 1)) -- 2 * sum(q+1..n)
  if s ~= want then fail("round %d: array sum %d, want %d", round, s, want) end
  checksum = checksum + s

  -- Hash part: string keys in, half out, back in with new values.
  local h = {}
  local m = n // 2
  for i = 1, m do h[keys[i]] = i end
  for i = 1, m, 2 do h[keys[i]] = nil end
  local count, hs = 0, 0
  for _, v in pairs(h) do count = count + 1; hs = hs + v end
  if count ~= m // 2 then fail("round %d: %d hash keys, want %d", round, count, m // 2) end
  for i = 1, m, 2 do h[keys[i]] = -i end
  checksum = checksum + count + hs

  -- Sparse integer keys: a hash part that is not an array.
  local sp = {}
  for i = 1, n // 4 do sp[i * 97] = i end
  local c2 = 0
  for _ in pairs(sp) do c2 = c2 + 1 end
  if c2 ~= n // 4 then fail("round %d: sparse count %d", round, c2) end

  -- Small records in a list: many small tables with both parts.
  local recs = {}
  for i = 1, n // 8 do
    recs[i] = { id = i, name = keys[i % 4096 + 1], i, i + 1 }
  end
  table.sort(recs, function(x, y) return (x.id * 7919) % 1009 < (y.id * 7919) % 1009 end)
  local rs = 0
  for i = 1, #recs do rs = rs + recs[i][1] + recs[i][2] - recs[i].id end
  local r = n // 8
  if rs ~= r * (r + 1) // 2 + r then fail("round %d: record sum %d", round, rs) end

  -- Insert at the front (moves the whole array), move, remove from the front.
  local f = {}
  for i = 1, 200 do table.insert(f, 1, i) end
  local g = table.move(f, 1, #f, 1, {})
  for _ = 1, 100 do table.remove(g, 1) end
  if #g ~= 100 or g[1] ~= 100 or g[100] ~= 1 then fail("round %d: insert/remove", round) end
  checksum = (checksum + c2 + rs + g[1]) % 1000000007
end

print(string.format("tables %d checksum %d", N, checksum))
