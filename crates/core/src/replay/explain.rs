//! `mcp-policy eval`: which rule definitions produced a decision.
//!
//! regorus 0.14 has no trace of which definition of a rule contributed to
//! its value, so each definition of `allow` and `deny` in package `mcp` is
//! evaluated on its own: the definition's text is copied, under a new name,
//! into an extra module of the same package (with the original module's
//! imports), and every copy is evaluated against the input the filter built.
//! A copy of `deny contains msg if {…}` yields exactly the reasons that
//! definition contributes; a copy of `allow if {…}` is `true` when that
//! definition holds. `default allow := …` is reported when no other
//! definition of `allow` holds.
//!
//! The copies run on regorus' interpreter; the decision itself comes from
//! the filter's own evaluation (RVM or interpreter). If the copies do not
//! compile (a construct the copy cannot carry), the explanation is left out
//! and says why; the decision is unaffected.

use regorus::unstable::{Expr, Module, Ref, Rule, RuleHead};
use regorus::{Engine, Value};

const PREFIX: &str = "mcp_policy_explain_";

/// One definition of `allow` or `deny`.
#[derive(Debug, Clone)]
struct Definition {
    rule: String,
    module: String,
    line: u32,
    col: u32,
    is_default: bool,
    /// The default's value (as written), for `default` definitions.
    default_text: String,
}

/// One definition that contributed.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// `allow` or `deny`.
    pub rule: String,
    /// Module name (the caller maps it to a path), line and column of the
    /// definition.
    pub module: String,
    pub line: u32,
    pub col: u32,
    /// What it produced: the reasons for `deny`, the value for `allow`.
    pub value: serde_json::Value,
    /// A `default` definition (used because no other definition held).
    pub is_default: bool,
}

/// The raw values of `data.mcp.allow` and `data.mcp.deny` on the
/// interpreter, and the definitions behind them.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// `data.mcp.allow`; `None` when undefined.
    pub allow: Option<serde_json::Value>,
    /// `data.mcp.deny`; `None` when undefined.
    pub deny: Option<serde_json::Value>,
    pub contributions: Vec<Contribution>,
}

/// Copies of every `allow`/`deny` definition, compiled with the policy.
pub struct Explainer {
    engine: Engine,
    definitions: Vec<Definition>,
}

impl Explainer {
    /// Build from the policy modules (not tests) and data. `Err` says why
    /// no explanation can be given.
    pub fn new(
        modules: &[(String, String)],
        data: Option<&serde_json::Value>,
    ) -> Result<Explainer, String> {
        let mut parsed = Engine::new();
        parsed.set_rego_v0(false);
        for (name, source) in modules {
            parsed
                .add_policy(name.clone(), source.clone())
                .map_err(|e| {
                    crate::policy::engine::PolicyError::from_regorus(&e, Some(name)).to_string()
                })?;
        }
        let mut definitions = Vec::new();
        let mut extra: Vec<(String, String)> = Vec::new();
        for m in parsed.get_modules().iter() {
            if let Some(text) = copies(m, &mut definitions) {
                extra.push((format!("<explain {}>", m.package.span.source.file()), text));
            }
        }
        let mut engine = Engine::new();
        engine.set_rego_v0(false);
        for (name, source) in modules.iter().chain(extra.iter()) {
            engine
                .add_policy(name.clone(), source.clone())
                .map_err(|e| {
                    format!(
                        "the rule copies do not compile: {}",
                        crate::policy::engine::PolicyError::from_regorus(&e, Some(name))
                    )
                })?;
        }
        if let Some(d) = data {
            let v = crate::policy::engine::json_to_value(d).map_err(|e| e.to_string())?;
            engine.add_data(v).map_err(|e| e.to_string())?;
        }
        Ok(Explainer {
            engine,
            definitions,
        })
    }

    /// Evaluate every copy for one input.
    pub fn explain(&mut self, input: &Value) -> Result<Explanation, String> {
        self.engine.set_input(input.clone());
        let allow = self.eval("data.mcp.allow")?;
        let deny = self.eval("data.mcp.deny")?;
        let mut contributions = Vec::new();
        let mut allow_held = false;
        for (i, d) in self.definitions.clone().iter().enumerate() {
            if d.is_default {
                continue;
            }
            let Some(v) = self.eval(&format!("data.mcp.{PREFIX}{i}"))? else {
                continue;
            };
            let produced = match &v {
                serde_json::Value::Array(a) => !a.is_empty(),
                serde_json::Value::Bool(b) => *b || d.rule == "allow",
                _ => true,
            };
            if !produced {
                continue;
            }
            allow_held |= d.rule == "allow";
            contributions.push(Contribution {
                rule: d.rule.clone(),
                module: d.module.clone(),
                line: d.line,
                col: d.col,
                value: v,
                is_default: false,
            });
        }
        if !allow_held {
            for d in self
                .definitions
                .iter()
                .filter(|d| d.is_default && d.rule == "allow")
            {
                contributions.push(Contribution {
                    rule: d.rule.clone(),
                    module: d.module.clone(),
                    line: d.line,
                    col: d.col,
                    value: allow
                        .clone()
                        .unwrap_or_else(|| serde_json::Value::String(d.default_text.clone())),
                    is_default: true,
                });
            }
        }
        Ok(Explanation {
            allow,
            deny,
            contributions,
        })
    }

    fn eval(&mut self, rule: &str) -> Result<Option<serde_json::Value>, String> {
        let v = self
            .engine
            .eval_rule(rule.to_string())
            .map_err(|e| crate::policy::engine::PolicyError::from_regorus(&e, None).to_string())?;
        if v == Value::Undefined {
            return Ok(None);
        }
        let text = v.to_json_str().map_err(|e| e.to_string())?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// The copies of a module's `allow`/`deny` definitions (package `mcp`
/// only), as the text of one extra module; `None` if it has none.
fn copies(m: &Ref<Module>, definitions: &mut Vec<Definition>) -> Option<String> {
    if m.package.refr.span().text().trim() != crate::policy::engine::POLICY_PACKAGE {
        return None;
    }
    let file = m.package.span.source.file().clone();
    let contents = m.package.span.source.contents().clone();
    let mut text = format!("package {}\n", crate::policy::engine::POLICY_PACKAGE);
    for imp in &m.imports {
        text.push_str(imp.span.text());
        text.push('\n');
    }
    let mut any = false;
    // A rule's text runs to where the next one starts: a span ends with its
    // last token, which for a string leaves out the closing quote.
    let starts: Vec<usize> = m.policy.iter().map(|r| r.span().start as usize).collect();
    for (i, rule) in m.policy.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(contents.len());
        match rule.as_ref() {
            Rule::Default {
                span, refr, value, ..
            } => {
                if let Some(name) = head_name(refr) {
                    if name == "allow" || name == "deny" {
                        definitions.push(Definition {
                            rule: name,
                            module: file.clone(),
                            line: span.line,
                            col: span.col,
                            is_default: true,
                            default_text: value.span().text().to_string(),
                        });
                    }
                }
            }
            Rule::Spec { span, head, .. } => {
                let refr = match head {
                    RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } => refr,
                    RuleHead::Func { .. } => continue,
                };
                let Some(name) = head_name(refr) else {
                    continue;
                };
                if name != "allow" && name != "deny" {
                    continue;
                }
                // Replace the head's name, keep everything else as written.
                let head_span = refr.span();
                let (Some(before), Some(after)) = (
                    contents.get(span.start as usize..head_span.start as usize),
                    contents.get(head_span.start as usize + name.len()..end),
                ) else {
                    continue;
                };
                let index = definitions.len();
                text.push_str(&format!("{before}{PREFIX}{index}{}\n", after.trim_end()));
                definitions.push(Definition {
                    rule: name,
                    module: file.clone(),
                    line: span.line,
                    col: span.col,
                    is_default: false,
                    default_text: String::new(),
                });
                any = true;
            }
        }
    }
    any.then_some(text)
}

/// `allow` for a head `allow` (a plain variable).
fn head_name(refr: &Expr) -> Option<String> {
    match refr {
        Expr::Var {
            value: Value::String(s),
            ..
        } => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const POLICY: &str = r#"package mcp
import rego.v1
default allow := false
allow if input.mcp.method == "ping"
allow if input.mcp.kind == "request"
blocked := {"rm"}
deny contains sprintf("tool %q is blocked", [input.mcp.tool.name]) if {
	input.mcp.tool.name in blocked
}
deny contains "no rm ever" if input.mcp.tool.name == "rm"
deny contains "never matches" if false
"#;

    fn explain(input: serde_json::Value) -> Explanation {
        let mut x = Explainer::new(&[("p.rego".into(), POLICY.into())], None).unwrap();
        x.explain(&crate::policy::engine::json_to_value(&input).unwrap())
            .unwrap()
    }

    #[test]
    fn each_definition_is_reported() {
        let e = explain(
            serde_json::json!({"mcp": {"kind": "request", "method": "tools/call", "tool": {"name": "rm"}}}),
        );
        assert_eq!(e.allow, Some(serde_json::json!(true)));
        assert_eq!(
            e.deny,
            Some(serde_json::json!(["no rm ever", "tool \"rm\" is blocked"]))
        );
        let lines: Vec<(String, u32)> = e
            .contributions
            .iter()
            .map(|c| (c.rule.clone(), c.line))
            .collect();
        assert_eq!(
            lines,
            [
                ("allow".to_string(), 5),
                ("deny".into(), 7),
                ("deny".into(), 10)
            ]
        );
        assert_eq!(
            e.contributions[1].value,
            serde_json::json!(["tool \"rm\" is blocked"])
        );
    }

    #[test]
    fn the_default_is_reported_when_nothing_else_holds() {
        let e = explain(serde_json::json!({"mcp": {"kind": "notification", "method": "x"}}));
        assert_eq!(e.allow, Some(serde_json::json!(false)));
        assert_eq!(e.contributions.len(), 1);
        assert!(e.contributions[0].is_default);
        assert_eq!(e.contributions[0].line, 3);
        let e = explain(serde_json::json!({"mcp": {"kind": "request", "method": "ping"}}));
        assert_eq!(e.contributions.len(), 2, "{:?}", e.contributions);
        assert!(e.contributions.iter().all(|c| !c.is_default));
    }
}
