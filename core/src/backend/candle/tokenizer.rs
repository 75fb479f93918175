//! A Hugging Face `tokenizer.json` as the backend seam wants it: ids for text (with the BOS the
//! model's tokenizer config asks for), the raw bytes of every token (so streaming never splits
//! a UTF-8 character and grammars see real bytes), the control tokens, and which tokens end a
//! generation.

use std::collections::BTreeSet;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use serde_json::Value;
use std::str::FromStr;
use tokenizers::{DecoderWrapper, Tokenizer};

use crate::backend::Token;
use crate::{Error, ErrorKind, Result};

/// End-of-turn tokens that chat models emit instead of (or as well as) their EOS, as llama.cpp
/// recognises them.
const END_OF_TURN: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "</s>",
    "<EOT>",
];

/// How a vocabulary entry's string maps to bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pieces {
    /// GPT-2 byte-level BPE: every byte is one printable character (`Ġ` = space).
    ByteLevel,
    /// SentencePiece style: `▁` is a space and `<0xHH>` a raw byte.
    SentencePiece,
    /// WordPiece (BERT): `##` continues a word, anything else starts one.
    WordPiece,
}

pub(super) struct HfTokenizer {
    inner: Tokenizer,
    /// `inner` with `encode_special_tokens` set: special-token text is split like any text.
    plain: Tokenizer,
    /// The bytes of each token id (empty for control tokens).
    bytes: Vec<Vec<u8>>,
    /// The text of each control token, by id (empty for the others).
    special: Vec<String>,
    end_of_generation: BTreeSet<u32>,
    /// BOS to put in front when the tokenizer config asks for it and the post-processor does
    /// not add it itself.
    bos: Option<u32>,
}

impl HfTokenizer {
    /// Read `dir/tokenizer.json` and the folder's configs.
    pub(super) fn load(dir: &Path) -> Result<HfTokenizer> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::new(
                ErrorKind::InvalidModel,
                format!(
                    "{} has no tokenizer.json; the candle backend needs the fast tokenizer file \
                     (save it with transformers' tokenizer.save_pretrained, or copy it from the \
                     model's repository)",
                    dir.display()
                ),
            ));
        }
        let bytes =
            crate::files::read_capped(&path, crate::files::MAX_JSON_BYTES, "tokenizer.json")?;
        let mut inner = Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::invalid_model(format!("{} cannot be read: {e}", path.display())))?;
        // Saved tokenizers often pad every text to a fixed length and truncate it (for batched
        // training); uml runs one text at a time and refuses, never cuts, one that is too long.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::invalid_model(format!("{}: {e}", path.display())))?;
        let tokenizer_config = read_json(&dir.join("tokenizer_config.json"));
        let config = read_json(&dir.join("config.json"));
        let generation = read_json(&dir.join("generation_config.json"));
        let token_id = |v: &Value| -> Option<u32> {
            let s = match v {
                Value::String(s) => s.as_str(),
                Value::Object(o) => o.get("content")?.as_str()?,
                _ => return None,
            };
            inner.token_to_id(s)
        };
        let mut end_of_generation = BTreeSet::new();
        for cfg in [&config, &generation] {
            match cfg.get("eos_token_id") {
                Some(Value::Number(n)) => end_of_generation.extend(n.as_u64().map(|n| n as u32)),
                Some(Value::Array(a)) => {
                    end_of_generation.extend(a.iter().filter_map(Value::as_u64).map(|n| n as u32))
                }
                _ => {}
            }
        }
        end_of_generation.extend(tokenizer_config.get("eos_token").and_then(token_id));
        let wants_bos = tokenizer_config
            .get("add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let bos = if wants_bos {
            tokenizer_config
                .get("bos_token")
                .and_then(token_id)
                .or_else(|| {
                    config
                        .get("bos_token_id")
                        .and_then(Value::as_u64)
                        .map(|n| n as u32)
                })
        } else {
            None
        };
        Ok(HfTokenizer::build(inner, end_of_generation, bos))
    }

    /// The tokenizer of a GGUF's vocabulary, as llama.cpp splits text (see
    /// `convert::vocab`), with its BOS and end-of-generation tokens from the metadata.
    pub(super) fn from_gguf(content: &Content, path: &Path) -> Result<HfTokenizer> {
        let json = crate::convert::tokenizer_json(content, path)?;
        let inner = Tokenizer::from_str(&json.to_string()).map_err(|e| {
            Error::invalid_model(format!(
                "{}: its vocabulary cannot be built: {e}",
                path.display()
            ))
        })?;
        let md = &content.metadata;
        let id = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
        let end_of_generation: BTreeSet<u32> = [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ]
        .iter()
        .filter_map(|k| id(k))
        .collect();
        // llama.cpp's default: SentencePiece vocabularies start with BOS, BPE ones do not.
        let model = md
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok());
        let wants_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(model.is_some_and(|m| m == "llama"));
        let bos = if wants_bos {
            id("tokenizer.ggml.bos_token_id")
        } else {
            None
        };
        Ok(HfTokenizer::build(inner, end_of_generation, bos))
    }

    /// Tables over `inner`: each token's bytes, the control tokens' text, and the
    /// end-of-generation set completed with the chat models' end-of-turn tokens.
    fn build(
        inner: Tokenizer,
        mut end_of_generation: BTreeSet<u32>,
        bos: Option<u32>,
    ) -> HfTokenizer {
        let n_vocab = inner.get_vocab_size(true);
        let pieces = piece_style(&inner);
        let added = inner.get_added_tokens_decoder();
        let mut bytes = Vec::with_capacity(n_vocab);
        let mut special = Vec::with_capacity(n_vocab);
        for id in 0..n_vocab as u32 {
            let text = inner.id_to_token(id).unwrap_or_default();
            match added.get(&id) {
                Some(t) if t.special => {
                    bytes.push(Vec::new());
                    special.push(t.content.clone());
                }
                Some(t) => {
                    bytes.push(t.content.clone().into_bytes());
                    special.push(String::new());
                }
                None => {
                    bytes.push(piece_bytes(&text, pieces));
                    special.push(String::new());
                }
            }
        }
        for name in END_OF_TURN {
            if let Some(id) = inner.token_to_id(name) {
                if added.get(&id).is_some_and(|t| t.special) {
                    end_of_generation.insert(id);
                }
            }
        }
        end_of_generation.retain(|&id| (id as usize) < n_vocab);
        let mut plain = inner.clone();
        plain.set_encode_special_tokens(true);
        HfTokenizer {
            inner,
            plain,
            bytes,
            special,
            end_of_generation,
            bos,
        }
    }

    pub(super) fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn encode(&self, text: &str, add_special: bool) -> Result<Vec<Token>> {
        let encoding = self
            .inner
            .encode(text, add_special)
            .map_err(|e| Error::backend(format!("tokenizer: {e}")))?;
        let mut ids: Vec<Token> = Vec::with_capacity(encoding.len() + 1);
        if let Some(bos) = self.bos.filter(|_| add_special) {
            if encoding.get_ids().first() != Some(&bos) {
                ids.push(bos as Token);
            }
        }
        ids.extend(encoding.get_ids().iter().map(|&i| i as Token));
        Ok(ids)
    }

    /// `encode` without BOS/EOS, with special-token text kept as text.
    pub(super) fn encode_plain(&self, text: &str) -> Result<Vec<Token>> {
        let encoding = self
            .plain
            .encode(text, false)
            .map_err(|e| Error::backend(format!("tokenizer: {e}")))?;
        Ok(encoding.get_ids().iter().map(|&i| i as Token).collect())
    }

    pub(super) fn token_bytes(&self, token: Token) -> Vec<u8> {
        usize::try_from(token)
            .ok()
            .and_then(|i| self.bytes.get(i))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn special_text(&self, token: Token) -> Vec<u8> {
        usize::try_from(token)
            .ok()
            .and_then(|i| self.special.get(i))
            .map(|s| s.clone().into_bytes())
            .unwrap_or_default()
    }

    pub(super) fn is_end_of_generation(&self, token: Token) -> bool {
        u32::try_from(token).is_ok_and(|t| self.end_of_generation.contains(&t))
    }
}

/// An optional JSON config: Null when absent, unreadable or not JSON (the defaults apply).
fn read_json(path: &Path) -> Value {
    crate::files::read_json(path).unwrap_or(Value::Null)
}

fn piece_style(t: &Tokenizer) -> Pieces {
    fn style(d: &DecoderWrapper) -> Option<Pieces> {
        match d {
            DecoderWrapper::ByteLevel(_) => Some(Pieces::ByteLevel),
            DecoderWrapper::WordPiece(_) => Some(Pieces::WordPiece),
            DecoderWrapper::Metaspace(_) | DecoderWrapper::ByteFallback(_) => {
                Some(Pieces::SentencePiece)
            }
            DecoderWrapper::Sequence(s) => s.get_decoders().iter().find_map(style),
            _ => None,
        }
    }
    t.get_decoder()
        .and_then(style)
        .unwrap_or(Pieces::SentencePiece)
}

fn piece_bytes(piece: &str, style: Pieces) -> Vec<u8> {
    match style {
        Pieces::ByteLevel => piece
            .chars()
            .map(|c| byte_level_decode(c).unwrap_or(b'?'))
            .collect(),
        Pieces::SentencePiece => {
            if let Some(hex) = piece
                .strip_prefix("<0x")
                .and_then(|r| r.strip_suffix('>'))
                .filter(|h| h.len() == 2)
            {
                if let Ok(b) = u8::from_str_radix(hex, 16) {
                    return vec![b];
                }
            }
            piece.replace('\u{2581}', " ").into_bytes()
        }
        Pieces::WordPiece => match piece.strip_prefix("##") {
            Some(rest) => rest.as_bytes().to_vec(),
            None => format!(" {piece}").into_bytes(),
        },
    }
}

/// GPT-2's byte-to-character table, inverted: printable Latin-1 bytes stand for themselves and
/// the other 68 bytes were shifted to U+0100.. in order.
fn byte_level_decode(c: char) -> Option<u8> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let code = c as u32;
    if printable(code) {
        return u8::try_from(code).ok();
    }
    let n = code.checked_sub(256)?;
    (0u32..=255)
        .filter(|&b| !printable(b))
        .nth(n as usize)
        .and_then(|b| u8::try_from(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_characters_map_back_to_their_bytes() {
        assert_eq!(byte_level_decode('Ġ'), Some(b' '));
        assert_eq!(byte_level_decode('Ċ'), Some(b'\n'));
        assert_eq!(byte_level_decode('A'), Some(b'A'));
        assert_eq!(byte_level_decode('\u{0100}'), Some(0));
        assert_eq!(piece_bytes("ĠParis", Pieces::ByteLevel), b" Paris");
        // "é" is two bytes, each its own character in a byte-level vocabulary.
        assert_eq!(piece_bytes("Ã©", Pieces::ByteLevel), "é".as_bytes());
    }

    #[test]
    fn sentencepiece_and_wordpiece_pieces() {
        assert_eq!(piece_bytes("\u{2581}the", Pieces::SentencePiece), b" the");
        assert_eq!(piece_bytes("<0x0A>", Pieces::SentencePiece), b"\n");
        assert_eq!(piece_bytes("<0xE2>", Pieces::SentencePiece), [0xE2]);
        assert_eq!(piece_bytes("##ing", Pieces::WordPiece), b"ing");
        assert_eq!(piece_bytes("play", Pieces::WordPiece), b" play");
    }
}
