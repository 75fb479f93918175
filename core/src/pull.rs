//! `pull`: download a model from the Hugging Face Hub (or any server with its URL layout) into
//! a folder, resumably, each file checked against the hash the hub lists for it.
//!
//! - What is fetched: from a repo holding GGUF files, one model (chosen by a quantization tag,
//!   `owner/name:Q4_K_M` as llama.cpp and Ollama spell it, with every part of a split file);
//!   from a Hugging Face folder, the files uml loads (config, tokenizer, safetensors, chat
//!   template), not PyTorch, ONNX or TF duplicates.
//! - Where: a GGUF file lands in the folder itself, a Hugging Face folder as a subfolder named
//!   after the repo; so `Manager::scan` of that folder finds either.
//! - Resumable: a file is written to `<name>.part` and renamed only once its size and hash
//!   match; a dropped connection is retried from where it stopped, and a later pull continues
//!   a `.part` an earlier one left. A file already there is reused when its hash matches, and
//!   never overwritten when it does not.
//! - Checked: LFS files (the weights) against the sha256 the hub lists, the others against
//!   their git blob id (sha1 of `blob <len>\0<bytes>`).
//! - Configured like the hub's own clients: `HF_ENDPOINT`, `HF_TOKEN` (else `HF_TOKEN_PATH`,
//!   else `$HF_HOME/token`, the file `huggingface-cli login` writes), `HF_HUB_OFFLINE`.
//!
//! Why not the `hf-hub` crate: its 1.0 is async (tokio, reqwest, hf-xet) and checks no hash;
//! a blocking client on the `ureq` core already uses keeps libuml and the bindings free of an
//! async runtime, and lets every file be verified.

use crate::{CancelToken, Error, ErrorKind, Result};
use serde::Deserialize;
use sha1::Digest;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The hub used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The quantization picked from a GGUF repo when the spec names none (llama.cpp's default).
pub const DEFAULT_QUANT: &str = "Q4_K_M";
/// How often a dropped download is resumed before the pull gives up.
const RETRIES: u32 = 4;
/// Bytes between progress reports (and cancellation checks).
const PROGRESS_STEP: u64 = 1 << 20;

/// How to pull. `Default`: branch `main`, the files chosen from the repo, the hub and token
/// from the environment.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// A branch, tag or commit; `None`: `main`.
    pub revision: Option<String>,
    /// Exact file paths in the repo to fetch instead of the chosen ones.
    pub files: Vec<String>,
    /// The hub's base URL; `None`: `HF_ENDPOINT`, else `DEFAULT_ENDPOINT`.
    pub endpoint: Option<String>,
    /// A hub access token; `None`: `HF_TOKEN`, else the token file.
    pub token: Option<String>,
}

impl PullOptions {
    /// Every key of `from_json`, in order (for "unknown key" messages).
    pub const FIELDS: &'static [&'static str] = &["revision", "files", "endpoint", "token"];

    /// Parse the JSON form hosts pass: `{"revision": "main", "files": ["a.gguf"], "endpoint":
    /// "http://...", "token": "hf_..."}` (every key optional; empty or `{}` gives the defaults).
    pub fn from_json(json: &str) -> Result<PullOptions> {
        #[derive(Deserialize, Default)]
        #[serde(default, deny_unknown_fields)]
        struct Json {
            revision: Option<String>,
            files: Vec<String>,
            endpoint: Option<String>,
            token: Option<String>,
        }
        let p: Json = crate::options::parse_json_object(json, "pull option", Self::FIELDS)?;
        Ok(PullOptions {
            revision: p.revision,
            files: p.files,
            endpoint: p.endpoint,
            token: p.token,
        })
    }
}

/// Where a pull stands, reported as it downloads.
#[derive(Debug, Clone)]
pub struct PullProgress<'a> {
    /// The file being fetched (its path in the repo).
    pub file: &'a str,
    /// Bytes of that file on disk so far, and its size.
    pub file_bytes: u64,
    pub file_total: u64,
    /// Bytes of every chosen file on disk so far, and their total.
    pub bytes: u64,
    pub total: u64,
}

/// What a pull left on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pulled {
    /// The repo, and the commit its files came from.
    pub repo: String,
    pub commit: String,
    /// The model to load: the GGUF file (the first part of a split one) or the folder.
    pub path: PathBuf,
    /// Every file written or reused.
    pub files: Vec<PathBuf>,
    /// Bytes fetched over the network by this pull, and bytes found already there.
    pub downloaded_bytes: u64,
    pub reused_bytes: u64,
}

/// A parsed `owner/name[:tag]` (an `hf.co/` or `https://huggingface.co/` prefix allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSpec {
    pub repo: String,
    /// The quantization to pick from a GGUF repo (`Q4_K_M`, `q8_0`, ...).
    pub tag: Option<String>,
}

impl PullSpec {
    pub fn parse(spec: &str) -> Result<PullSpec> {
        let bad = |why: &str| {
            Error::invalid_argument(format!(
                "{spec:?} is not a model to pull ({why}); write owner/name or owner/name:QUANT, \
                 e.g. HuggingFaceTB/SmolLM2-135M-Instruct or bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M"
            ))
        };
        let mut rest = spec.trim();
        for prefix in ["https://", "http://"] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        for prefix in ["huggingface.co/", "hf.co/"] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let (repo, tag) = match rest.split_once(':') {
            Some((repo, tag)) => (repo, Some(tag)),
            None => (rest, None),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.len() != 2 {
            return Err(bad("a repo id has one slash"));
        }
        for part in &parts {
            let fine = !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !fine {
                return Err(bad("letters, digits, '-', '_' and '.' only"));
            }
        }
        if let Some(tag) = tag {
            if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad("a quantization tag is letters, digits and '_'"));
            }
        }
        Ok(PullSpec {
            repo: repo.to_string(),
            tag: tag.map(str::to_string),
        })
    }

    /// The repo's name without its owner.
    pub fn name(&self) -> &str {
        self.repo.rsplit('/').next().unwrap_or(&self.repo)
    }
}

/// Where `uml pull` puts models by default: `$UML_MODELS`, else `$XDG_CACHE_HOME/uml/models`,
/// else `~/.cache/uml/models`.
pub fn default_dir() -> Result<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("UML_MODELS")
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("uml/models")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/uml/models")))
        .ok_or_else(|| {
            Error::invalid_argument("no folder to pull into: set UML_MODELS or HOME, or pass one")
        })
}

/// Download `spec` into `dir` (created if missing). `progress` is called about every MiB;
/// cancelling leaves the `.part` file for the next pull to continue.
pub fn pull(
    spec: &str,
    dir: &Path,
    options: &PullOptions,
    cancel: Option<&CancelToken>,
    progress: &mut dyn FnMut(&PullProgress),
) -> Result<Pulled> {
    let spec = PullSpec::parse(spec)?;
    let hub = Hub::new(options)?;
    let revision = options.revision.as_deref().unwrap_or("main");
    let info = hub.repo_info(&spec.repo, revision)?;
    let chosen = choose_files(&spec, &info.siblings, &options.files)?;
    // GGUF files land in the folder itself, anything else in a subfolder named after the repo.
    let gguf = chosen.iter().all(|f| f.rfilename.ends_with(".gguf"));
    let base = if gguf {
        dir.to_path_buf()
    } else {
        dir.join(spec.name())
    };
    let total: u64 = chosen.iter().map(|f| f.size()).sum();
    let mut pulled = Pulled {
        repo: spec.repo.clone(),
        commit: info.sha.clone(),
        path: base.clone(),
        files: Vec::new(),
        downloaded_bytes: 0,
        reused_bytes: 0,
    };
    let mut done = 0u64;
    for file in &chosen {
        let target = base.join(if gguf {
            file.file_name()
        } else {
            &file.rfilename
        });
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        let fetched = hub.fetch(&spec.repo, &info.sha, file, &target, cancel, &mut |bytes| {
            progress(&PullProgress {
                file: &file.rfilename,
                file_bytes: bytes,
                file_total: file.size(),
                bytes: done + bytes,
                total,
            })
        })?;
        pulled.downloaded_bytes += fetched;
        pulled.reused_bytes += file.size() - fetched;
        done += file.size();
        pulled.files.push(target);
        // Cancelled during the file's last report: it is kept whole, the pull stops.
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(Error::new(ErrorKind::Cancelled, "the pull was cancelled"));
        }
    }
    if gguf {
        pulled.path = pulled.files[0].clone();
    }
    Ok(pulled)
}

/// One file of a repo, as the hub lists it.
#[derive(Debug, Clone, Deserialize)]
struct Sibling {
    rfilename: String,
    /// The git blob id (sha1), which is what a non-LFS file hashes to.
    #[serde(rename = "blobId", default)]
    blob_id: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Debug, Clone, Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

impl Sibling {
    fn size(&self) -> u64 {
        self.lfs.as_ref().map(|l| l.size).or(self.size).unwrap_or(0)
    }

    fn file_name(&self) -> &str {
        self.rfilename.rsplit('/').next().unwrap_or(&self.rfilename)
    }
}

#[derive(Debug, Deserialize)]
struct RepoInfo {
    sha: String,
    siblings: Vec<Sibling>,
}

/// The files to fetch: `files` when given, else one GGUF model, else a Hugging Face folder.
fn choose_files(spec: &PullSpec, siblings: &[Sibling], files: &[String]) -> Result<Vec<Sibling>> {
    for s in siblings {
        check_repo_path(&s.rfilename)?;
    }
    if !files.is_empty() {
        return files
            .iter()
            .map(|name| {
                siblings
                    .iter()
                    .find(|s| &s.rfilename == name)
                    .cloned()
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "{} has no file {name:?}; it has: {}",
                                spec.repo,
                                list(siblings)
                            ),
                        )
                    })
            })
            .collect();
    }
    let ggufs: Vec<&Sibling> = siblings
        .iter()
        .filter(|s| s.rfilename.ends_with(".gguf") && !s.file_name().starts_with("mmproj"))
        .collect();
    if !ggufs.is_empty() {
        return choose_gguf(spec, &ggufs);
    }
    if spec.tag.is_some() {
        return Err(Error::invalid_argument(format!(
            "{} holds no GGUF files, so a quantization tag means nothing; pull {} for its \
             Hugging Face folder",
            spec.repo, spec.repo
        )));
    }
    if !siblings.iter().any(|s| s.rfilename == "config.json") {
        return Err(Error::new(
            ErrorKind::UnsupportedFormat,
            format!(
                "{} holds neither GGUF files nor a config.json, so it is no model uml loads; it \
                 has: {}",
                spec.repo,
                list(siblings)
            ),
        ));
    }
    Ok(siblings
        .iter()
        .filter(|s| folder_file(&s.rfilename))
        .cloned()
        .collect())
}

/// Whether a Hugging Face folder's file is one uml reads (the weights as safetensors only).
fn folder_file(path: &str) -> bool {
    let top = !path.contains('/') || path.starts_with("1_Pooling/");
    let ext = path.rsplit('.').next().unwrap_or("");
    top && matches!(ext, "json" | "safetensors" | "model" | "jinja" | "txt")
        && path != "training_args.json"
}

/// The GGUF model `spec` names: by tag, else the only one, else `DEFAULT_QUANT`; with the
/// other parts of a split file.
fn choose_gguf(spec: &PullSpec, ggufs: &[&Sibling]) -> Result<Vec<Sibling>> {
    // Only a split file's first part stands for its model.
    let models: Vec<&Sibling> = ggufs
        .iter()
        .copied()
        .filter(|s| split_of(s.file_name()).is_none_or(|(_, part)| part == 1))
        .collect();
    let tags = || {
        let names: Vec<&str> = models.iter().map(|s| s.file_name()).collect();
        names.join(", ")
    };
    let matching = |tag: &str| -> Vec<&Sibling> {
        models
            .iter()
            .copied()
            .filter(|s| has_tag(s.file_name(), tag))
            .collect()
    };
    let picked = match &spec.tag {
        Some(tag) => match matching(tag).as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{} has no GGUF file tagged {tag}; it has: {}",
                        spec.repo,
                        tags()
                    ),
                ))
            }
            _ => {
                return Err(Error::invalid_argument(format!(
                    "{} has several GGUF files tagged {tag}: {}; name one with PullOptions.files \
                     (--file)",
                    spec.repo,
                    tags()
                )))
            }
        },
        None if models.len() == 1 => models[0],
        None => match matching(DEFAULT_QUANT).as_slice() {
            [one] => *one,
            _ => {
                return Err(Error::invalid_argument(format!(
                    "{} holds several GGUF models; name one as {}:TAG (e.g. :{DEFAULT_QUANT}); \
                     it has: {}",
                    spec.repo,
                    spec.repo,
                    tags()
                )))
            }
        },
    };
    let Some((stem, _)) = split_of(picked.file_name()) else {
        return Ok(vec![picked.clone()]);
    };
    let mut parts: Vec<Sibling> = ggufs
        .iter()
        .filter(|s| split_of(s.file_name()).is_some_and(|(other, _)| other == stem))
        .map(|s| (*s).clone())
        .collect();
    parts.sort_by(|a, b| a.rfilename.cmp(&b.rfilename));
    Ok(parts)
}

/// `(stem, part)` of a split GGUF name `stem-0000N-of-0000M.gguf`.
fn split_of(name: &str) -> Option<(&str, u32)> {
    crate::manager::split_part(name.strip_suffix(".gguf")?)
}

/// Whether `name` carries `tag` as a whole word: after the start or one of `-._/`, and before
/// `-` or `.` (so `Q4_K` does not match `Q4_K_M`).
fn has_tag(name: &str, tag: &str) -> bool {
    let (name, tag) = (name.to_ascii_lowercase(), tag.to_ascii_lowercase());
    name.match_indices(&tag).any(|(at, _)| {
        let before = name[..at].chars().last();
        let after = name[at + tag.len()..].chars().next();
        before.is_none_or(|c| "-._/".contains(c)) && after.is_some_and(|c| "-.".contains(c))
    })
}

/// A repo path must stay inside the folder it lands in, whatever the server says.
fn check_repo_path(path: &str) -> Result<()> {
    let fine = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if fine {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidModel,
            format!("the hub lists a file named {path:?}, which would land outside the folder"),
        ))
    }
}

fn list(siblings: &[Sibling]) -> String {
    let names: Vec<&str> = siblings.iter().map(|s| s.rfilename.as_str()).collect();
    names.join(", ")
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {e}", path.display()))
}

/// The hub's endpoint and token (from the options, else the environment).
struct Hub {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Hub {
    fn new(options: &PullOptions) -> Result<Hub> {
        if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "HF_HUB_OFFLINE is set, so nothing can be pulled; unset it to download",
            ));
        }
        let endpoint = options
            .endpoint
            .clone()
            .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::invalid_argument(format!(
                "the hub endpoint {endpoint:?} is not an http:// or https:// URL (HF_ENDPOINT)"
            )));
        }
        let token = options.token.clone().or_else(token_from_env);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Hub {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    fn get(&self, url: &str, range_from: u64) -> Result<ureq::http::Response<ureq::Body>> {
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if range_from > 0 {
            request = request.header("Range", format!("bytes={range_from}-"));
        }
        request.call().map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "cannot reach the hub at {} (HF_ENDPOINT): {e}",
                    self.endpoint
                ),
            )
        })
    }

    /// An error for a refused request, naming the fix.
    fn refused(&self, what: &str, status: u16) -> Error {
        match status {
            401 => Error::invalid_argument(format!(
                "{what}: the hub at {} wants a valid access token; set HF_TOKEN (or run \
                 `huggingface-cli login`)",
                self.endpoint
            )),
            403 => Error::invalid_argument(format!(
                "{what}: the hub at {} refuses this token; a gated repo needs its terms accepted \
                 on its page, with a token of that account in HF_TOKEN",
                self.endpoint
            )),
            404 => Error::new(
                ErrorKind::NotFound,
                format!(
                    "{what}: not found at {} (check the name and revision, or HF_ENDPOINT)",
                    self.endpoint
                ),
            ),
            _ => Error::new(
                ErrorKind::Io,
                format!(
                    "{what}: the hub at {} answered HTTP {status}",
                    self.endpoint
                ),
            ),
        }
    }

    fn repo_info(&self, repo: &str, revision: &str) -> Result<RepoInfo> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}?blobs=true",
            self.endpoint,
            encode(revision)
        );
        let response = self.get(&url, 0)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(self.refused(&format!("{repo} at {revision}"), status));
        }
        let info: RepoInfo = serde_json::from_reader(
            response
                .into_body()
                .into_with_config()
                .limit(64 << 20)
                .reader(),
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("the hub's description of {repo} is not what a hub sends: {e}"),
            )
        })?;
        if info.sha.len() != 40 || !info.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the hub names {repo}'s commit {:?}, not a git hash",
                    info.sha
                ),
            ));
        }
        Ok(info)
    }

    /// Fetch `file` into `target` (through `target.part`), checked. Returns the bytes it
    /// downloaded (0 when `target` was already there).
    fn fetch(
        &self,
        repo: &str,
        commit: &str,
        file: &Sibling,
        target: &Path,
        cancel: Option<&CancelToken>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let expected = Expected::of(file)?;
        let size = file.size();
        if target.exists() {
            let mut hasher = expected.hasher();
            let mut reader = File::open(target).map_err(|e| io_error(target, e))?;
            let len = copy_hashing(&mut reader, &mut std::io::sink(), &mut hasher, None)
                .map_err(|e| io_error(target, e))?;
            if len == size && expected.matches(hasher, len) {
                progress(size);
                return Ok(0);
            }
            return Err(Error::invalid_argument(format!(
                "{} is already there with other content than {repo}'s {}; move it away or pull \
                 into another folder",
                target.display(),
                file.rfilename
            )));
        }
        let part = {
            let mut name = target.as_os_str().to_owned();
            name.push(".part");
            PathBuf::from(name)
        };
        let url = format!(
            "{}/{repo}/resolve/{commit}/{}",
            self.endpoint,
            file.rfilename
                .split('/')
                .map(encode)
                .collect::<Vec<_>>()
                .join("/")
        );
        // What an earlier pull left, hashed so the hash can go on from it.
        let mut hasher = expected.hasher();
        let mut have = match File::open(&part) {
            Ok(mut f) => copy_hashing(&mut f, &mut std::io::sink(), &mut hasher, None)
                .map_err(|e| io_error(&part, e))?,
            Err(_) => 0,
        };
        if have > size {
            have = 0;
            hasher = expected.hasher();
        }
        let mut downloaded = 0u64;
        let mut attempt = 0;
        while have < size || (size == 0 && !part.exists()) {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Err(Error::new(ErrorKind::Cancelled, "the pull was cancelled"));
            }
            let response = self.get(&url, have)?;
            let status = response.status().as_u16();
            let append = match status {
                206 if have > 0 => true,
                200 => false,
                // The range is past the end: the .part is not this file's start.
                416 => {
                    have = 0;
                    hasher = expected.hasher();
                    continue;
                }
                _ => return Err(self.refused(&format!("{repo}'s {}", file.rfilename), status)),
            };
            if !append {
                have = 0;
                hasher = expected.hasher();
            }
            let mut out = OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&part)
                .map_err(|e| io_error(&part, e))?;
            let mut body = response
                .into_body()
                .into_with_config()
                .limit(size.saturating_sub(have).saturating_add(1))
                .reader();
            let mut report = |written: u64| progress(have + written);
            let copied = copy_hashing(
                &mut body,
                &mut out,
                &mut hasher,
                Some((&mut report, cancel)),
            );
            let written = match &copied {
                Ok(n) => *n,
                Err(_) => out
                    .metadata()
                    .map(|m| m.len())
                    .unwrap_or(0)
                    .saturating_sub(have),
            };
            out.sync_all().map_err(|e| io_error(&part, e))?;
            have += written;
            downloaded += written;
            match copied {
                Ok(_) if have >= size => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    return Err(Error::new(ErrorKind::Cancelled, "the pull was cancelled"));
                }
                // A dropped connection: resume from what was written.
                _ if attempt < RETRIES => {
                    attempt += 1;
                    tracing::warn!(file = %file.rfilename, have, "download dropped; resuming");
                    std::thread::sleep(Duration::from_millis(250 * u64::from(attempt)));
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!(
                            "downloading {repo}'s {} stopped {RETRIES} times at {have} of {size} \
                             bytes; run the pull again to resume from {}",
                            file.rfilename,
                            part.display()
                        ),
                    ))
                }
            }
        }
        if have != size || !expected.matches(hasher, have) {
            let _ = std::fs::remove_file(&part);
            return Err(Error::new(
                ErrorKind::InvalidModel,
                format!(
                    "the download of {repo}'s {} ({have} bytes) does not match the {} the hub \
                     lists for it; it was removed, pull again",
                    file.rfilename,
                    expected.what()
                ),
            ));
        }
        std::fs::rename(&part, target).map_err(|e| io_error(target, e))?;
        Ok(downloaded)
    }
}

/// The hash a file must have.
enum Expected {
    Sha256(String),
    /// A git blob id: sha1 over `blob <len>\0` and the bytes.
    GitBlob(String, u64),
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
        }
    }
}

impl Expected {
    fn of(file: &Sibling) -> Result<Expected> {
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        match (&file.lfs, &file.blob_id) {
            (Some(lfs), _) if hex(&lfs.sha256, 64) => {
                Ok(Expected::Sha256(lfs.sha256.to_ascii_lowercase()))
            }
            (None, Some(blob)) if hex(blob, 40) => Ok(Expected::GitBlob(
                blob.to_ascii_lowercase(),
                file.size.unwrap_or(0),
            )),
            _ => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the hub lists no hash for {}, so its download could not be checked",
                    file.rfilename
                ),
            )),
        }
    }

    fn hasher(&self) -> Hasher {
        match self {
            Expected::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
            Expected::GitBlob(_, len) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {len}\0").as_bytes());
                Hasher::Sha1(h)
            }
        }
    }

    fn matches(&self, hasher: Hasher, len: u64) -> bool {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        match (self, hasher) {
            (Expected::Sha256(want), Hasher::Sha256(h)) => hex(&h.finalize()) == *want,
            (Expected::GitBlob(want, size), Hasher::Sha1(h)) => {
                len == *size && hex(&h.finalize()) == *want
            }
            _ => false,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Expected::Sha256(_) => "sha256",
            Expected::GitBlob(..) => "git blob id",
        }
    }
}

type Report<'a, 'b> = (&'a mut dyn FnMut(u64), Option<&'b CancelToken>);

/// Copy `from` into `to`, hashing it; with `report`, call it about every MiB with the bytes so
/// far, and stop with `Interrupted` once the token is cancelled.
fn copy_hashing(
    from: &mut dyn Read,
    to: &mut dyn Write,
    hasher: &mut Hasher,
    mut report: Option<Report<'_, '_>>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let (mut total, mut reported) = (0u64, 0u64);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        total += n as u64;
        if let Some((report, cancel)) = report.as_mut() {
            if total - reported >= PROGRESS_STEP {
                reported = total;
                report(total);
                if cancel.is_some_and(CancelToken::is_cancelled) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Interrupted,
                        "cancelled",
                    ));
                }
            }
        }
    }
    if let Some((report, _)) = report.as_mut() {
        report(total);
    }
    Ok(total)
}

/// Percent-encode one URL path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `HF_TOKEN`, else the file `HF_TOKEN_PATH` names, else `$HF_HOME/token` (default
/// `~/.cache/huggingface/token`).
fn token_from_env() -> Option<String> {
    let nonempty = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    if let Some(token) = std::env::var("HF_TOKEN").ok().and_then(nonempty) {
        return Some(token);
    }
    let path = std::env::var_os("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("token")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/token"))
        })?;
    let bytes = crate::files::read_capped(&path, 4096, "a hub token").ok()?;
    nonempty(String::from_utf8(bytes).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sibling(name: &str) -> Sibling {
        Sibling {
            rfilename: name.to_string(),
            blob_id: None,
            size: Some(1),
            lfs: None,
        }
    }

    fn chosen(spec: &str, names: &[&str]) -> Result<Vec<String>> {
        let siblings: Vec<Sibling> = names.iter().map(|n| sibling(n)).collect();
        let spec = PullSpec::parse(spec)?;
        Ok(choose_files(&spec, &siblings, &[])?
            .into_iter()
            .map(|s| s.rfilename)
            .collect())
    }

    #[test]
    fn specs_parse_as_llama_cpp_and_ollama_write_them() {
        let p = PullSpec::parse("hf.co/bartowski/SmolLM2-GGUF:Q4_K_M").unwrap();
        assert_eq!(p.repo, "bartowski/SmolLM2-GGUF");
        assert_eq!(p.tag.as_deref(), Some("Q4_K_M"));
        assert_eq!(p.name(), "SmolLM2-GGUF");
        let p = PullSpec::parse("https://huggingface.co/HuggingFaceTB/SmolLM2-135M").unwrap();
        assert_eq!(
            (p.repo.as_str(), p.tag),
            ("HuggingFaceTB/SmolLM2-135M", None)
        );
        for bad in [
            "", "name", "a/b/c", "../x", "a/..", "a/b:", "a/b:Q4 K", "a/b c",
        ] {
            let e = PullSpec::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert!(e.message().contains("owner/name"), "{e}");
        }
    }

    #[test]
    fn a_gguf_repo_gives_the_tagged_file_or_the_default_quant() {
        let repo = [
            "README.md",
            "m-Q4_K_M.gguf",
            "m-Q4_K_S.gguf",
            "m-Q8_0.gguf",
            "mmproj-m-f16.gguf",
        ];
        assert_eq!(chosen("o/m", &repo).unwrap(), ["m-Q4_K_M.gguf"]);
        assert_eq!(chosen("o/m:q8_0", &repo).unwrap(), ["m-Q8_0.gguf"]);
        // `Q4_K` is a prefix of two tags, not a tag.
        let e = chosen("o/m:Q4_K", &repo).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("m-Q8_0.gguf"), "{e}");
        let e = chosen("o/m", &["a-Q8_0.gguf", "a-F16.gguf"]).unwrap_err();
        assert!(e.message().contains(":TAG"), "{e}");
        assert_eq!(
            chosen("o/m", &["only.gguf", "mmproj.gguf"]).unwrap(),
            ["only.gguf"]
        );
    }

    #[test]
    fn a_split_gguf_comes_with_all_its_parts() {
        let repo = [
            "big-Q8_0-00002-of-00002.gguf",
            "big-Q8_0-00001-of-00002.gguf",
            "big-F16.gguf",
        ];
        assert_eq!(
            chosen("o/big:Q8_0", &repo).unwrap(),
            [
                "big-Q8_0-00001-of-00002.gguf",
                "big-Q8_0-00002-of-00002.gguf"
            ]
        );
        assert_eq!(split_of("x-00001-of-00003.gguf"), Some(("x", 1)));
        assert_eq!(split_of("x-1-of-3.gguf"), None);
    }

    #[test]
    fn a_folder_repo_gives_the_files_uml_reads() {
        let repo = [
            "config.json",
            "model.safetensors",
            "pytorch_model.bin",
            "onnx/model.onnx",
            "onnx/config.json",
            "tokenizer.json",
            "1_Pooling/config.json",
            "vocab.txt",
            "README.md",
        ];
        assert_eq!(
            chosen("o/m", &repo).unwrap(),
            [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "1_Pooling/config.json",
                "vocab.txt"
            ]
        );
        let e = chosen("o/m", &["README.md", "weights.bin"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat);
        let e = chosen("o/m:Q4_0", &repo).unwrap_err();
        assert!(e.message().contains("no GGUF"), "{e}");
    }

    #[test]
    fn a_hub_cannot_name_a_file_outside_the_folder() {
        for name in [
            "../x.gguf",
            "/etc/passwd",
            "a//b.json",
            "a/./b.json",
            "a\\..\\b",
        ] {
            let e = chosen("o/m", &["config.json", name]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidModel, "{name}");
        }
    }

    #[test]
    fn git_blob_ids_are_what_git_computes() {
        // `printf hello | git hash-object --stdin`
        let file = Sibling {
            rfilename: "x".into(),
            blob_id: Some("b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0".into()),
            size: Some(5),
            lfs: None,
        };
        let expected = Expected::of(&file).unwrap();
        let mut h = expected.hasher();
        h.update(b"hello");
        assert!(expected.matches(h, 5));
        let mut h = expected.hasher();
        h.update(b"hellO");
        assert!(!expected.matches(h, 5));
    }

    #[test]
    fn tags_match_whole_words_only() {
        assert!(has_tag("SmolLM2-135M-Instruct-Q4_K_M.gguf", "q4_k_m"));
        assert!(has_tag("model.Q8_0.gguf", "Q8_0"));
        assert!(!has_tag("model-Q4_K_M.gguf", "Q4_K"));
        assert!(!has_tag("model-XQ8_0.gguf", "Q8_0"));
    }

    #[test]
    fn options_parse_from_json_and_name_unknown_keys() {
        let o = PullOptions::from_json(r#"{"revision": "v1", "files": ["a.gguf"]}"#).unwrap();
        assert_eq!(o.revision.as_deref(), Some("v1"));
        assert_eq!(o.files, ["a.gguf"]);
        let e = PullOptions::from_json(r#"{"revison": "v1"}"#).unwrap_err();
        assert!(e.message().contains("revison"), "{e}");
    }
}
