use super::*;

fn t(source: &str) -> ChatTemplate {
    match ChatTemplate::new(source, "<s>", "</s>") {
        Ok(t) => t,
        Err(e) => panic!("template does not compile: {e}"),
    }
}

fn fixed() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2025, 3, 7)
        .and_then(|d| d.and_hms_opt(13, 5, 9))
        .expect("a valid date")
}

fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
    pairs
        .iter()
        .map(|(r, c)| ChatMessage::new(*r, *c))
        .collect()
}

const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[test]
fn smollm2() {
    let tpl = ChatTemplate::from_model(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    let out = tpl.render(&msgs(&[("user", "Hi")]), true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let out = tpl
        .render(
            &msgs(&[
                ("system", "Be terse."),
                ("user", "Hi"),
                ("assistant", "Hello"),
            ]),
            false,
        )
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello<|im_end|>\n"
    );
}

const LLAMA3: &str = r#"{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"#;

#[test]
fn llama3_with_bos_and_date_string() {
    let tpl = ChatTemplate::from_model(LLAMA3, "<|begin_of_text|>", "<|eot_id|>")
        .unwrap()
        .with_fixed_time(fixed());
    let out = tpl
        .render(&msgs(&[("system", " Be brief. "), ("user", "Hi \n")]), true)
        .unwrap();
    assert_eq!(
        out,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge \
         Date: December 2023\nToday Date: 07 Mar 2025\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn llama32_strftime_now() {
    // Llama 3.2 computes the date itself.
    let src = r#"{{- bos_token }}
{%- if strftime_now is defined %}
    {%- set today = strftime_now("%d %b %Y") %}
{%- else %}
    {%- set today = "26 Jul 2024" %}
{%- endif %}
{{- "Today Date: " + today + "\n" }}
{{- strftime_now("%Y-%m-%d %H:%M:%S %A") }}"#;
    let tpl = t(src).with_fixed_time(fixed());
    let out = tpl.render(&msgs(&[("user", "x")]), false).unwrap();
    assert_eq!(
        out,
        "<s>Today Date: 07 Mar 2025\n2025-03-07 13:05:09 Friday"
    );
    // Without a fixed time it is now: a four-digit year.
    let year = t("{{ strftime_now('%Y') }}")
        .render(&msgs(&[("user", "x")]), false)
        .unwrap();
    assert!(
        year.len() == 4 && year.chars().all(|c| c.is_ascii_digit()),
        "{year}"
    );
    // A bad format is an error, not a panic.
    let e = t("{{ strftime_now('%Q') }}")
        .render(&msgs(&[("user", "x")]), false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("strftime_now"), "{e}");
}

const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

#[test]
fn gemma() {
    let tpl = ChatTemplate::from_model(GEMMA, "<bos>", "<eos>").unwrap();
    let out = tpl
        .render(
            &msgs(&[
                ("user", "Hi"),
                ("assistant", "Hello!"),
                ("user", "  How are you?\n"),
            ]),
            true,
        )
        .unwrap();
    assert_eq!(
        out,
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n\
         <start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn gemma_raise_exception_is_invalid_argument_with_the_template_message() {
    let tpl = ChatTemplate::from_model(GEMMA, "<bos>", "<eos>").unwrap();
    let e = tpl
        .render(&msgs(&[("user", "a"), ("user", "b")]), true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.message(),
        "the chat template rejected the messages: Conversation roles must alternate \
         user/assistant/user/assistant/..."
    );
    let e = tpl
        .render(&msgs(&[("system", "s"), ("user", "b")]), true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.message(),
        "the chat template rejected the messages: System role not supported"
    );
}

const MISTRAL: &str = r#"{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- set ns = namespace(last_user=-1) %}
{%- for message in loop_messages %}
    {%- if message['role'] == 'user' %}
        {%- set ns.last_user = loop.index0 %}
    {%- endif %}
{%- endfor %}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.index0 == ns.last_user and system_message is defined %}
            {{- '[INST] ' + system_message.strip() + '\n\n' + message['content'].strip() + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'].strip() + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content']|trim + eos_token }}
    {%- endif %}
{%- endfor %}
"#;

#[test]
fn mistral_namespace_index0_strip() {
    let tpl = ChatTemplate::from_model(MISTRAL, "<s>", "</s>").unwrap();
    let out = tpl
        .render(
            &msgs(&[
                ("system", "Be nice. "),
                ("user", " Hi "),
                ("assistant", " Hello! "),
                ("user", "Bye"),
            ]),
            true,
        )
        .unwrap();
    assert_eq!(
        out,
        "<s>[INST] Hi[/INST] Hello!</s>[INST] Be nice.\n\nBye[/INST]"
    );
    let out = tpl.render(&msgs(&[("user", "Hi")]), true).unwrap();
    assert_eq!(out, "<s>[INST] Hi[/INST]");
    let e = tpl.render(&msgs(&[("assistant", "x")]), true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.message().contains("After the optional system message"),
        "{e}"
    );
}

#[test]
fn chatml_fallback() {
    let tpl = ChatTemplate::chatml();
    assert_eq!(tpl.origin(), TemplateOrigin::Builtin);
    let out = tpl
        .render(&msgs(&[("system", "S"), ("user", "U")]), true)
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        tpl.render(&msgs(&[("user", "U")]), false).unwrap(),
        "<|im_start|>user\nU<|im_end|>\n"
    );
}

#[test]
fn trim_blocks_and_lstrip_blocks_like_hf() {
    let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\nU: {{ m.content }}\n    {% else %}\nA: {{ m.content }}\n    {% endif %}\n{% endfor %}\n";
    let out = t(src)
        .render(&msgs(&[("user", "Hi"), ("assistant", "Hello")]), false)
        .unwrap();
    assert_eq!(out, "U: Hi\nA: Hello\n");
}

#[test]
fn python_string_and_dict_methods() {
    let src = r#"{{ "  a b  ".strip() }}|{{ "xxhixx".lstrip("x") }}|{{ "hi!!".rstrip("!") }}|{{ "a,b,c".split(",") | join("+") }}|{{ "a b  c".split() | length }}|{% if "hello".startswith("he") %}S{% endif %}|{% if "hello".endswith("lo") %}E{% endif %}|{{ "hi".upper() }}|{{ "hello world".title() }}|{{ "a-b".replace("-", "_") }}|{% for k, v in {"x": 1, "y": 2}.items() %}{{ k }}={{ v }};{% endfor %}|{{ {"x": 1}.get("x") }}|{{ {"x": 1}.get("z", "dflt") }}"#;
    let out = t(src).render(&msgs(&[("user", "x")]), false).unwrap();
    assert_eq!(
        out,
        "a b|hixx|hi|a+b+c|3|S|E|HI|Hello World|a_b|x=1;y=2;|1|dflt"
    );
}

#[test]
fn lenient_undefined_namespace_and_break() {
    let src = "[{{ nothing }}]{% for x in missing %}X{% endfor %}{% if missing %}M{% endif %}{% if tools is none %}no-tools{% endif %}|{% set ns = namespace(n=0) %}{% for m in messages %}{% if loop.index0 == 2 %}{% break %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}|{{ eos_token }}|{{ messages | length }}|{{ messages[-1].content }}";
    let out = t(src)
        .render(
            &msgs(&[
                ("user", "a"),
                ("assistant", "b"),
                ("user", "c"),
                ("assistant", "d"),
            ]),
            false,
        )
        .unwrap();
    assert_eq!(out, "[]no-tools|2|</s>|4|d");
}

#[test]
fn tojson_like_python_json_dumps() {
    let src =
        r#"{{ {"name": "f", "args": {"q": "é<&>\"", "n": 1.0, "k": [1, true, none]}} | tojson }}"#;
    let out = t(src).render(&msgs(&[("user", "x")]), false).unwrap();
    assert_eq!(
        out,
        r#"{"name": "f", "args": {"q": "é<&>\"", "n": 1.0, "k": [1, true, null]}}"#
    );
    let out = t(r#"{{ "é😀\n" | tojson(ensure_ascii=true) }}"#)
        .render(&msgs(&[("user", "x")]), false)
        .unwrap();
    assert_eq!(out, r#""\u00e9\ud83d\ude00\n""#);
    let out = t(r#"{{ {"a": [1, 2], "b": {}, "c": []} | tojson(indent=2) }}"#)
        .render(&msgs(&[("user", "x")]), false)
        .unwrap();
    assert_eq!(
        out,
        "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": []\n}"
    );
    let out = t(r#"{{ {"b": 1, "a": 2} | tojson(sort_keys=true, separators=(",", ":")) }}"#)
        .render(&msgs(&[("user", "x")]), false)
        .unwrap();
    assert_eq!(out, r#"{"a":2,"b":1}"#);
    let out = t("{{ messages | tojson }}")
        .render(&msgs(&[("user", "hi")]), false)
        .unwrap();
    assert_eq!(out, r#"[{"role": "user", "content": "hi"}]"#);
    let e = t("{{ 1 | tojson(colour=1) }}")
        .render(&msgs(&[("user", "x")]), false)
        .unwrap_err();
    assert!(e.message().contains("colour"), "{e}");
}

#[test]
fn tools_are_passed_through() {
    let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather"}}]);
    let out = t("{% if tools %}{% for t in tools %}{{ t.function.name }}{% endfor %}{% endif %}")
        .render_with_tools(&msgs(&[("user", "x")]), Some(&tools), false)
        .unwrap();
    assert_eq!(out, "get_weather");
}

#[test]
fn syntax_errors_name_the_line_and_origin() {
    let e = ChatTemplate::new("hello\n{% if x %}\nworld", "", "").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.message()
            .starts_with("chat template passed in chat_template has a syntax error at line"),
        "{e}"
    );
    assert!(e.message().contains("fix the template"), "{e}");
    let e = ChatTemplate::from_model("ok\n\n{{ 'unclosed' ", "", "").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel);
    assert!(
        e.message()
            .contains("from the model has a syntax error at line 3"),
        "{e}"
    );
    assert!(e.message().contains("chat_template load option"), "{e}");
}

#[test]
fn render_errors_depend_on_origin() {
    let src = "line1\n{{ messages[0].content.nosuchmethod() }}";
    let e = ChatTemplate::from_model(src, "", "")
        .unwrap()
        .render(&msgs(&[("user", "x")]), false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel);
    assert!(e.message().contains("failed to render at line 2"), "{e}");
    let e = t(src).render(&msgs(&[("user", "x")]), false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn messages_from_json_forms() {
    let m = ChatTemplate::messages_from_json(
        r#"[{"role": "system", "content": "S"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null}]"#,
    )
    .unwrap();
    assert_eq!(
        m,
        vec![
            ChatMessage::system("S"),
            ChatMessage::user("ab"),
            ChatMessage::assistant("")
        ]
    );
    // Serializes back with string content.
    assert_eq!(
        serde_json::to_string(&m[1]).unwrap(),
        r#"{"role":"user","content":"ab"}"#
    );
}

#[test]
fn messages_from_json_errors() {
    for (json, needle) in [
        ("[]", "chat messages are empty"),
        (
            r#"[{"role": "", "content": "x"}]"#,
            "chat message 0 has an empty role",
        ),
        (
            r#"[{"role": "user", "content": "x"}, {"role": " ", "content": "y"}]"#,
            "chat message 1",
        ),
        (
            r#"[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]"#,
            "content part 0 has type \"image_url\"",
        ),
        (
            r#"[{"role": "user", "content": [{"type": "text"}]}]"#,
            "no string \"text\"",
        ),
        (
            r#"[{"role": "user", "content": [5]}]"#,
            "content part 0 is not an object",
        ),
        (
            r#"[{"role": "user", "content": 5}]"#,
            "content must be a string",
        ),
        (r#"[{"role": "user"}]"#, "missing field `content`"),
        (
            r#"[{"role": "user", "content": "x", "name": "bob"}]"#,
            "unknown field `name`",
        ),
        (
            r#"{"role": "user", "content": "x"}"#,
            "invalid chat messages",
        ),
        ("not json", "invalid chat messages"),
    ] {
        let e = ChatTemplate::messages_from_json(json).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{json}");
        assert!(e.message().contains(needle), "{json}: {e}");
    }
}

#[test]
fn template_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<ChatTemplate>();
    let tpl = t("{{ bos_token }}{{ eos_token }}");
    assert_eq!(tpl.bos_token(), "<s>");
    assert_eq!(tpl.eos_token(), "</s>");
    assert_eq!(tpl.source(), "{{ bos_token }}{{ eos_token }}");
    assert_eq!(
        tpl.clone().render(&msgs(&[("user", "x")]), false).unwrap(),
        "<s></s>"
    );
}

/// Real templates fit the render limits with room to spare: 10,000 messages each.
#[test]
fn long_real_conversations_fit_the_render_limits() {
    let conversation: Vec<ChatMessage> = (0..10_000)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            ChatMessage::new(role, format!("message {i}: some text to talk about"))
        })
        .collect();
    for (name, source) in [
        ("smollm2", SMOLLM2),
        ("llama3", LLAMA3),
        ("gemma", GEMMA),
        ("mistral", MISTRAL),
    ] {
        let out = t(source)
            .with_fixed_time(fixed())
            .render(&conversation, true)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out.contains("message 9999: some text"), "{name}");
    }
}

/// Render a hostile template from a model file over one message.
fn hostile(source: &str) -> Error {
    let tpl = ChatTemplate::from_model(source, "<s>", "</s>").unwrap();
    let e = tpl.render(&msgs(&[("user", "hi")]), true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    e
}

#[test]
fn a_template_that_loops_without_end_runs_out_of_steps() {
    let e =
        hostile("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
    assert!(e.message().contains("more than 20000000 steps"), "{e}");
    assert!(e.message().contains("chat_template load option"), "{e}");
}

#[test]
fn a_template_that_writes_without_end_stops_at_the_output_cap() {
    let e = hostile(
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 4096 }}{% endfor %}\
         {% endfor %}",
    );
    let cap = limits::output_cap("user".len() + "hi".len());
    assert!(
        e.message()
            .contains(&format!("wrote more than {cap} bytes")),
        "{e}"
    );
}

/// Endless macro recursion stops at the recursion limit, on a thread with a small stack: the
/// limit is low enough for any thread a host calls from.
#[test]
fn endless_recursion_stops_at_the_limit_on_a_small_stack() {
    let e = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            hostile(
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}\
                 {% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
            )
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(e.message().contains("recursion"), "{e}");
}

#[test]
fn size_arguments_are_capped() {
    for source in [
        "{{ 'a\nb' | indent(1000000000) }}",
        "{{ 'a\nb' | indent(width=1000000000) }}",
        "{{ messages | tojson(indent=1000000000) }}",
    ] {
        let e = hostile(source);
        assert!(
            e.message().contains("limit") || e.message().contains("0 to 64"),
            "{e}"
        );
    }
    // In range they still work like Jinja.
    assert_eq!(
        t("{{ 'a\nb' | indent(2, true) }}")
            .render(&msgs(&[("user", "hi")]), false)
            .unwrap(),
        "  a\n  b"
    );
}

#[test]
fn tojson_refuses_values_too_deep_or_too_long() {
    let e = hostile(
        "{% set ns = namespace(v=1) %}{% for i in range(200) %}{% set ns.v = [ns.v] %}\
         {% endfor %}{{ ns.v | tojson }}",
    );
    assert!(e.message().contains("deeper than 128"), "{e}");
    // A lazy sequence of a billion items is written as iterated and stopped at the cap, never
    // collected.
    let e = hostile("{{ ([1] * 1000000000) | tojson }}");
    assert!(e.message().contains("longer than"), "{e}");
}

#[test]
fn a_cancelled_render_stops_with_cancelled() {
    let token = CancelToken::new();
    token.cancel();
    let e = t(SMOLLM2)
        .render_cancellable(&msgs(&[("user", "hi")]), None, true, Some(&token))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    // Cancelled from another thread while the template writes in a long loop.
    let tpl = t("{% for i in range(100000) %}{% for j in range(40) %}x{% endfor %}{% endfor %}");
    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            token.cancel();
        })
    };
    let e = tpl
        .render_cancellable(&msgs(&[("user", "hi")]), None, true, Some(&token))
        .unwrap_err();
    canceller.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
}
