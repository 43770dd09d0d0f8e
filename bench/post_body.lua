-- wrk script: POST the body in BENCH_BODY (the Content-Type comes from -H or defaults to JSON).
wrk.method = "POST"
if wrk.headers["Content-Type"] == nil then
  wrk.headers["Content-Type"] = "application/json"
end
wrk.body = os.getenv("BENCH_BODY")
