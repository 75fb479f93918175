//! Constrained output (GBNF grammars, JSON schemas) for every backend, through llguidance: a
//! token trie built once per loaded model from the bytes of each token, and per generation a
//! matcher that says which tokens may come next. Unlike llama.cpp's grammar sampler (whose
//! parser recurses without limit and which aborts the process when no token fits), llguidance
//! bounds its work and reports every dead end as an error value.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};

use super::{gbnf, GenerateParams};
use crate::backend::{LoadedModel, Token};
use crate::{Error, ErrorKind, Result};

/// Compiles grammars against one model's vocabulary. Built once per loaded model (it reads every
/// token's bytes); shared by all its generations.
pub struct ConstraintFactory {
    factory: Arc<ParserFactory>,
    n_vocab: usize,
}

impl std::fmt::Debug for ConstraintFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintFactory")
            .field("n_vocab", &self.n_vocab)
            .finish_non_exhaustive()
    }
}

impl ConstraintFactory {
    /// Read the vocabulary of `model`. Control tokens are entered as llguidance's special
    /// tokens (marker byte 0xFF + their text, e.g. `<|im_end|>`), so grammars can name them but
    /// plain text never matches them.
    pub fn new(model: &dyn LoadedModel) -> Result<ConstraintFactory> {
        let n_vocab = model.vocab_size();
        let mut words = Vec::with_capacity(n_vocab as usize);
        let mut end_tokens = Vec::new();
        for t in 0..n_vocab {
            let token = t as Token;
            let mut bytes = model.token_bytes(token);
            if bytes.is_empty() {
                let mut name = model.special_token_text(token);
                if name.is_empty() {
                    name = format!("<[{t}]>").into_bytes();
                }
                bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(TokTrie::SPECIAL_TOKEN_MARKER);
                bytes.extend_from_slice(&name);
            }
            if model.is_end_of_generation(token) {
                end_tokens.push(t);
            }
            words.push(bytes);
        }
        let Some(&first_end) = end_tokens.first() else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "grammar and json_schema need a model with an end-of-generation token; this \
                 model declares none",
            ));
        };
        let trie =
            TokTrie::from(&TokRxInfo::new(n_vocab, first_end), &words).with_eos_tokens(&end_tokens);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| {
            Error::internal(format!("could not index the vocabulary for grammars: {e}"))
        })?;
        // Warnings become part of our errors, not lines on the host's stderr.
        factory.quiet();
        Ok(ConstraintFactory {
            factory: Arc::new(factory),
            n_vocab: n_vocab as usize,
        })
    }

    /// The constraint `params` ask for (`grammar` or `json_schema`), or `None`. A grammar that
    /// does not compile is an `InvalidArgument` that says why.
    pub fn for_params(&self, params: &GenerateParams) -> Result<Option<Constraint>> {
        let grammar = match (&params.grammar, &params.json_schema) {
            (Some(g), _) if gbnf::is_lark(g) => TopLevelGrammar::from_lark(g.clone()),
            (Some(g), _) => TopLevelGrammar::from_lark(gbnf::to_lark(g)?),
            (None, Some(schema)) => TopLevelGrammar::from_json_schema(schema.clone()),
            (None, None) => return Ok(None),
        };
        let what = if params.grammar.is_some() {
            "grammar"
        } else {
            "json_schema"
        };
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::invalid_argument(format!("{what}: cannot be compiled: {e}")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::invalid_argument(format!(
                "{what}: cannot be compiled: {e}"
            )));
        }
        Ok(Some(Constraint {
            matcher,
            n_vocab: self.n_vocab,
        }))
    }
}

/// One generation's grammar state.
pub struct Constraint {
    matcher: Matcher,
    n_vocab: usize,
}

impl Constraint {
    /// Set the logit of every token the grammar does not allow next to -inf.
    pub(crate) fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let allowed = self.matcher.compute_mask_or_eos().map_err(|e| {
            // llguidance appends a dump of its parser state after the first line.
            let reason = e.to_string();
            let reason = reason.lines().next().unwrap_or_default();
            let reason = if reason == "NoExtensionBias" {
                "the grammar allows no token here (can it match anything at all? a rule that \
                 only refers to itself cannot)"
            } else {
                reason
            };
            Error::invalid_argument(format!(
                "no token can continue the output under the grammar (or JSON schema): {reason}"
            ))
        })?;
        for (i, l) in logits.iter_mut().enumerate() {
            if i >= self.n_vocab || !allowed.get(i) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Advance past `token`, which `mask` allowed.
    pub(crate) fn accept(&mut self, token: Token) -> Result<()> {
        let t = u32::try_from(token)
            .map_err(|_| Error::internal(format!("negative token id {token}")))?;
        self.matcher.consume_token(t).map_err(|e| {
            Error::internal(format!(
                "the grammar refused token {token} it had allowed: {e}"
            ))
        })
    }

    /// The grammar has matched completely and allows nothing more.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

#[cfg(all(test, feature = "llamacpp"))]
mod tests;
