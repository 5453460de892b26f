//! `mcp-policy test [PATH...]`

use super::{emit, emit_json, load, Failure, Format, TestArgs, EXIT_FAIL, EXIT_OK};
use std::io::Write;

pub(super) fn run(args: &TestArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let loaded = load::load(&args.paths)?;
    let data = match loaded.data()? {
        Some(d) => Some(
            mcp_policy_core::policy::engine::json_to_value(&d).map_err(|e| Failure {
                code: EXIT_FAIL,
                message: format!("data: {e}"),
            })?,
        ),
        None => None,
    };
    let filter = args.run.clone().unwrap_or_default();
    let results =
        mcp_policy_core::policy::regotest::run_matching(&loaded.all_modules(), data, |name| {
            name.contains(&filter)
        })
        .map_err(|e| Failure {
            code: EXIT_FAIL,
            message: loaded.display_location(&e.to_string()),
        })?;
    let passed = results.iter().filter(|r| r.passed).count();
    let failed = results.len() - passed;
    let location =
        |module: &str, line: u32| format!("{}:{line}", loaded.display_of(module).unwrap_or(module));

    if args.format == Format::Json {
        let tests: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "passed": r.passed,
                    "location": location(&r.module, r.line),
                    "detail": r.detail.as_deref().map(|d| loaded.display_location(d)),
                    "duration_ms": r.duration.as_secs_f64() * 1000.0,
                })
            })
            .collect();
        emit_json(
            out,
            &serde_json::json!({"tests": tests, "passed": passed, "failed": failed}),
        );
    } else {
        for r in &results {
            let ms = r.duration.as_secs_f64() * 1000.0;
            emit(
                out,
                &format!(
                    "{} {} ({ms:.1} ms)\n",
                    if r.passed { "PASS" } else { "FAIL" },
                    r.name
                ),
            );
            if !r.passed && args.verbose {
                emit(out, &format!("     at {}\n", location(&r.module, r.line)));
                if let Some(d) = &r.detail {
                    emit(out, &format!("     {}\n", loaded.display_location(d)));
                }
            }
        }
        if results.is_empty() {
            emit(out, "no tests found (rules named test_*)\n");
        }
        emit(out, &format!("{passed} passed, {failed} failed\n"));
        if failed > 0 && !args.verbose {
            emit(
                out,
                "(run again with -v for where each failing test is and what it compared)\n",
            );
        }
    }
    Ok(if failed == 0 && !results.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAIL
    })
}
