//! How deeply Cedar text may nest, checked before Cedar reads it.
//!
//! Cedar's parser, its JSON form and its printer recurse once per level of
//! the expression tree, with frames of several kilobytes. A few hundred
//! nested parentheses overflow a thread's stack, which aborts the whole
//! process (Rust cannot unwind from a stack overflow). Cedar's evaluator
//! and validator check the stack they have left; its parser does not.
//!
//! So two defences: the text is refused when its expression tree could be
//! deeper than [`MAX_NESTING`], and Cedar's parsing, validation and printing
//! run on a thread whose stack is far larger than that depth needs
//! ([`on_deep_stack`]).
//!
//! The check is lexical, so it never recurses itself, and conservative: it
//! bounds the depth of the tree from above. Within one bracket the tree can
//! be no deeper than its operators (each makes at most one node on a path),
//! except that a chain of `&&` and `||` adds one level per link plus the
//! deepest single term. Sibling expressions (separated by `,` or `;`) start
//! again. String literals and comments are skipped. Schemas are checked the
//! same way; there `<` of `Set<...>` counts as an operator, which only
//! overestimates.

/// The deepest expression tree a policy or schema may have. Real policies
/// are a few levels deep; a chain of a hundred conditions joined by `&&`
/// is about a hundred.
pub const MAX_NESTING: usize = 256;

/// The stack that Cedar's parser, validator and printer get: at most a few
/// tens of kilobytes per level in an unoptimised build, so [`MAX_NESTING`]
/// levels fit with room to spare. It is reserved, not committed, memory.
const DEEP_STACK_BYTES: usize = 64 << 20;

/// One open bracket: the logical links and the operators of the current
/// term seen in it so far.
#[derive(Default)]
struct Level {
    links: usize,
    term: usize,
}

impl Level {
    fn depth(&self) -> usize {
        1 + self.links + self.term
    }
}

/// Refuses text whose expression tree could be deeper than [`MAX_NESTING`].
pub fn check(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut levels = vec![Level::default()];
    // The sum of the open levels' depths, kept as it changes.
    let mut depth = 1;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        let next = bytes.get(at + 1).copied();
        let mut width = 1;
        match (byte, next) {
            (b'"', _) => width = string_width(&bytes[at..]),
            (b'/', Some(b'/')) => {
                width = bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(bytes.len() - at)
            }
            (b'(' | b'[' | b'{', _) => {
                levels.push(Level::default());
                depth += 1;
            }
            // An unmatched closer is Cedar's to report.
            (b')' | b']' | b'}', _) if levels.len() > 1 => {
                depth -= levels.pop().map_or(0, |closed| closed.depth());
            }
            (b',' | b';', _) => {
                if let Some(level) = levels.last_mut() {
                    depth -= level.links + level.term;
                    *level = Level::default();
                }
            }
            (b'&', Some(b'&')) | (b'|', Some(b'|')) => {
                if let Some(level) = levels.last_mut() {
                    depth = depth - level.term + 1;
                    level.links += 1;
                    level.term = 0;
                }
                width = 2;
            }
            (b'=' | b'!' | b'<' | b'>', Some(b'=')) => {
                operator(&mut levels, &mut depth);
                width = 2;
            }
            (b'<' | b'>' | b'+' | b'-' | b'*' | b'!' | b'.', _) => {
                operator(&mut levels, &mut depth);
            }
            (b'a'..=b'z' | b'A'..=b'Z' | b'_', _) => {
                width = bytes[at..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .unwrap_or(bytes.len() - at);
                if matches!(
                    &bytes[at..at + width],
                    b"in" | b"has" | b"like" | b"is" | b"if"
                ) {
                    operator(&mut levels, &mut depth);
                }
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(format!(
                "line {line}: nested too deeply; an expression may be at most {MAX_NESTING} levels deep \
                 (split long chains of conditions into separate policies)"
            ));
        }
        at += width;
    }
    Ok(())
}

fn operator(levels: &mut [Level], depth: &mut usize) {
    if let Some(level) = levels.last_mut() {
        level.term += 1;
        *depth += 1;
    }
}

/// The width of the string literal at the start of `bytes`, quotes and
/// escapes included; the rest of the text when it is unterminated.
fn string_width(bytes: &[u8]) -> usize {
    let mut at = 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// Runs `work` on a thread with a stack deep enough for any text that
/// passed [`check`], and waits for it. Fails only when the operating
/// system starts no thread.
pub fn on_deep_stack<T: Send>(work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("idplane-cedar".to_owned())
            .stack_size(DEEP_STACK_BYTES)
            .spawn_scoped(scope, work)?;
        match thread.join() {
            Ok(result) => Ok(result),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(condition: &str) -> String {
        format!("@id(\"p\") permit (principal, action, resource) when {{ {condition} }};")
    }

    fn nested(open: &str, close: &str, levels: usize) -> String {
        policy(&format!(
            "{}true{} == true",
            open.repeat(levels),
            close.repeat(levels)
        ))
    }

    #[test]
    fn brackets_of_every_kind_count_until_the_bound() {
        for (open, close) in [("(", ")"), ("[", "]"), ("{a: ", "}")] {
            assert_eq!(check(&nested(open, close, 200)), Ok(()), "{open}");
            let refused = check(&nested(open, close, MAX_NESTING)).unwrap_err();
            assert!(refused.contains("nested too deeply"), "{open}: {refused}");
        }
    }

    #[test]
    fn a_chain_counts_its_links_and_its_deepest_term() {
        let term = "principal.level >= resource.level";
        let chain = |n: usize| policy(&vec![term; n].join(" && "));
        // 1 (text) + 1 (when) + links + the 3 operators of a term.
        assert_eq!(check(&chain(MAX_NESTING - 4)), Ok(()));
        assert!(check(&chain(MAX_NESTING - 3)).is_err());
        let mixed = vec![term; 100].join(" || ");
        assert_eq!(check(&policy(&mixed)), Ok(()));
    }

    #[test]
    fn operators_without_links_count_one_each() {
        let sum = |n: usize| policy(&format!("{} == 1", vec!["1"; n].join(" + ")));
        // 1 (text) + 1 (when) + the `+`s and the `==`.
        assert_eq!(check(&sum(MAX_NESTING - 2)), Ok(()));
        assert!(check(&sum(MAX_NESTING - 1)).is_err());
        let negations = policy(&format!("{}true", "!".repeat(MAX_NESTING)));
        assert!(check(&negations).is_err());
        let ifs = policy(&"if true then ".repeat(MAX_NESTING));
        assert!(check(&ifs).is_err());
        let members = policy(&format!("context{} == 1", ".a".repeat(MAX_NESTING)));
        assert!(check(&members).is_err());
    }

    #[test]
    fn siblings_start_again() {
        let set = |n: usize| {
            let members = vec!["principal.a.b.c"; n].join(", ");
            policy(&format!("[{members}].contains(1)"))
        };
        assert_eq!(check(&set(5_000)), Ok(()));
        let policies = vec![policy(&vec!["true"; 200].join(" && ")); 50].join("\n");
        assert_eq!(check(&policies), Ok(()));
    }

    #[test]
    fn strings_and_comments_are_not_read() {
        let quoted = format!(
            "// {}\n{}",
            "(".repeat(10_000),
            policy(&format!(
                r#"principal.name == "{}\"((""#,
                "(".repeat(10_000)
            ))
        );
        assert_eq!(check(&quoted), Ok(()));
        assert_eq!(
            check(&format!("\"unterminated {}", "(".repeat(10_000))),
            Ok(())
        );
    }

    #[test]
    fn the_refusal_names_the_line() {
        let text = format!("// a comment\n\n{}", nested("(", ")", 1_000));
        assert!(check(&text).unwrap_err().starts_with("line 3: "));
    }

    #[test]
    fn a_deep_stack_returns_the_result_and_carries_a_panic() {
        assert_eq!(on_deep_stack(|| 6 * 7).unwrap(), 42);
        let panicked = std::panic::catch_unwind(|| on_deep_stack(|| panic!("inside")));
        assert!(panicked.is_err());
    }
}
