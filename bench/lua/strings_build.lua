-- strings_build.lua -- building strings: string.format, concatenation with
-- `..`, table.concat of many pieces, string.rep, tostring and interning.
--
-- Usage: lua strings_build.lua [records]   (default 160000)
-- Each record is formatted twice, piece by piece with `..` (a new string
-- per step) and with table.concat (a growing buffer), and the two must be
-- equal; a report string built from all records must have the length the
-- records add up to.  Short strings are interned, long ones (> 40 bytes)
-- are not: both kinds come and go.

local N = tonumber(arg and arg[1]) or 160000

local function fail(fmt, ...)
  error("strings_build: " .. string.format(fmt, ...))
end

local names = {}
for i = 1, 64 do names[i] = "name" .. i end

local total_len, hash = 0, 0
local lines = {}
for i = 1, N do
  local fields = 3 + i % 10
  -- Piece by piece: every `..` makes a new string.
  local s = "#" .. i
  local parts = { "#" .. i }
  for j = 1, fields do
    local key = names[(i * 7 + j) % #names + 1]
    local piece = string.format(" %s=%d/%.2f", key, i * j, (i + j) / 8)
    s = s .. piece
    parts[#parts + 1] = piece
  end
  local t = table.concat(parts)
  if s ~= t then fail("record %d: %q ~= %q", i, s, t) end

  -- Interned short strings: the same key built twice is the same string.
  local k1, k2 = "k" .. (i % 1000), string.format("k%d", i % 1000)
  if k1 ~= k2 then fail("interning %s ~= %s", k1, k2) end

  -- A padded line, built with rep and sub.
  local line = (s .. string.rep(".", 80)):sub(1, 80 + i % 17)
  if #line ~= 80 + i % 17 then fail("line %d has length %d", i, #line) end

  total_len = total_len + #s
  hash = (hash * 31 + s:byte(#s) + #line) % 1000000007
  lines[#lines + 1] = s
  if #lines == 500 then
    -- A report: one big string out of 500 records, checked by length.
    local report = table.concat(lines, "\n")
    local want = -1 -- one separator fewer than lines
    for _, l in ipairs(lines) do want = want + #l + 1 end
    if #report ~= want then fail("report length %d, want %d", #report, want) end
    hash = (hash + #report) % 1000000007
    lines = {}
  end
end

print(string.format("strings_build %d checksum %d %d", N, total_len, hash))
