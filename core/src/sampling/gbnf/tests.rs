use super::*;
use crate::ErrorKind;

fn lark(g: &str) -> String {
    to_lark(g).unwrap_or_else(|e| panic!("{g}: {e}"))
}

fn refused(g: &str) -> String {
    let e = to_lark(g).expect_err(g);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{g}");
    e.message().to_string()
}

#[test]
fn alternatives_of_literals_become_one_start_rule() {
    assert_eq!(
        lark(r#"root ::= "yes" | "no""#),
        "start: T0_ROOT\nT0_ROOT: \"yes\" | \"no\"\n"
    );
}

#[test]
fn character_rules_become_terminals_and_recursive_rules_stay_rules() {
    let g = r#"
        # a list of numbers
        root   ::= "[" items? "]"
        items  ::= number ("," ws items)?
        number ::= "-"? [0-9]+ ("." [0-9]{1,3})?
        ws     ::= [ \t\n]*
    "#;
    let out = lark(g);
    assert!(out.contains("start: \"[\" r0_items? \"]\""), "{out}");
    assert!(
        out.contains("r0_items: T1_NUMBER (\",\" T3_WS r0_items)?"),
        "{out}"
    );
    assert!(
        out.contains(r#"T1_NUMBER: "-"? /[\x{30}-\x{39}]/+ ("." /[\x{30}-\x{39}]/{1,3})?"#),
        "{out}"
    );
    assert!(out.contains(r#"T3_WS: /[\x{20}\x{9}\x{a}]/*"#), "{out}");
}

#[test]
fn rules_continue_after_a_bar_or_inside_parentheses_and_end_at_a_newline() {
    let g = "root ::= a |\n  b\na ::= (\"x\"\n \"y\")\nb ::= \"z\"";
    let out = lark(g);
    assert!(out.contains("T0_A: \"x\" \"y\""), "{out}");
    assert!(
        out.contains("start: T0_A | T1_B") || out.contains("T2_ROOT: T0_A | T1_B"),
        "{out}"
    );
}

#[test]
fn escapes_negated_classes_any_char_and_tokens() {
    let out = lark(r#"root ::= "a\"b\\\n\x41\u00e9" [^"\\] . <|im_end|>"#);
    assert_eq!(
        out,
        "start: \"a\\\"b\\\\\\nAé\" /[^\\x{22}\\x{5c}]/ /(?s:.)/ <|im_end|>\n"
    );
}

#[test]
fn repetition_bounds() {
    let out = lark(r#"root ::= "a"{2} "b"{2,} "c"{0,3} "d"{0} ("e" "f")*"#);
    assert!(
        out.contains(r#""a"{2} "b"{2,} "c"{0,3} "" ("e" "f")*"#),
        "{out}"
    );
}

#[test]
fn lark_input_is_recognised() {
    assert!(is_lark("%llguidance {}\nstart: \"a\""));
    assert!(is_lark("start: \"a\" | \"b\""));
    assert!(!is_lark(r#"root ::= "a""#));
}

#[test]
fn bad_grammars_name_the_problem_and_the_place() {
    assert!(refused(r#"start ::= "a""#).contains("no `root` rule"));
    assert!(refused("root ::= item").contains("refers to `item`, which is not defined"));
    assert!(refused("root ::= \"abc").contains("unterminated string literal at line 1"));
    assert!(refused("root ::= [a-").contains("unterminated character class"));
    assert!(refused("root ::= [z-a]").contains("reversed"));
    assert!(refused("root ::= \"a\"{3,1}").contains("maximum is below its minimum"));
    assert!(refused("root ::= \"\\q\"").contains("unknown escape"));
    assert!(refused("root = \"a\"").contains("expected `::=`"));
    assert!(refused("this is not gbnf").contains("expected `::=`"));
    assert!(refused("root ::= \"a\"\nroot ::= \"b\"").contains("defined twice"));
    assert!(refused("root ::= ( \"a\"").contains("expected `)`"));
    assert!(refused("root ::= !<[2]>").contains("not supported"));
    let deep = format!(
        "root ::= {}\"a\"{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(refused(&deep).contains("nest deeper than 64"));
    let e = refused("root ::= \"a\"\nx ::= \"b\" )");
    assert!(e.contains("line 2"), "{e}");
}
