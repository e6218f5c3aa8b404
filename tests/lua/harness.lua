-- A minimal test harness for tests/lua: test(name, fn) runs fn and counts
-- failures; check(cond, msg) and near(a, b, tol, msg) record them; done()
-- prints "N passed, N failed" and fails the script when any test failed.
local H = { passed = 0, failed = 0, current_ok = true }

function H.check(cond, msg)
  if not cond then
    H.current_ok = false
    io.stderr:write("  check failed: ", tostring(msg), "\n", debug.traceback("", 2), "\n")
  end
end

function H.near(a, b, tol, msg)
  H.check(type(a) == "number" and math.abs(a - b) <= tol,
          string.format("%s: got %s, expected %s +- %s", msg or "value", tostring(a), tostring(b), tostring(tol)))
end

-- Runs fn and checks it raises an error whose message contains text.
function H.raises(fn, text)
  local ok, err = pcall(fn)
  H.check(not ok, "expected an error containing '" .. text .. "'")
  if not ok then
    H.check(tostring(err):find(text, 1, true) ~= nil,
            "error '" .. tostring(err) .. "' does not contain '" .. text .. "'")
  end
end

function H.test(name, fn)
  H.current_ok = true
  local ok, err = pcall(fn)
  if not ok then
    H.current_ok = false
    io.stderr:write("  error: ", tostring(err), "\n")
  end
  if H.current_ok then
    H.passed = H.passed + 1
    print("ok " .. name)
  else
    H.failed = H.failed + 1
    print("FAIL " .. name)
  end
end

function H.done()
  print(string.format("%d passed, %d failed", H.passed, H.failed))
  if H.failed > 0 then error("some tests failed", 0) end
end

return H
