//! Container images built in the guest, as OCI image archives that
//! `ctr -n k8s.io images import` loads into containerd (no registry is
//! reachable from the guest).
//!
//! In: an image reference and the image's content ([`Entry`]s: directories,
//! files with their bytes, executables). Out: an OCI image layout packed in
//! one tar ([`Archive::bytes`]): `oci-layout`, `index.json`, and
//! `blobs/sha256/` with one uncompressed layer, the image config and the
//! manifest. The index names the image by its normalised reference
//! (`io.containerd.image.name`), so that containerd stores it under the
//! name a kubelet's image reference resolves to, and the CRI plugin writes
//! that name into each container's `io.kubernetes.cri.image-name`.
//!
//! Invariants: the layer holds every parent directory before what is in
//! it; executables of one mode are one file and hard links to it (tar
//! link entries), so that an image with thirty executables holds one copy
//! of the binary; the output is a function of the input (no timestamps),
//! and the config carries the reference, so that two images of equal
//! content but different names have different ids (containerd keeps one
//! image per id, and with two names on one id it would write either name
//! into the annotation).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The media type of an uncompressed OCI layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The media type of an OCI image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The `PATH` every image's config sets, as base images do.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One thing in an image's file system. Paths are absolute and canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory with this mode (its parents are made 0755 when no entry
    /// names them).
    Dir {
        /// Where.
        path: String,
        /// Its mode (permission bits).
        mode: u32,
    },
    /// A regular file with these bytes.
    File {
        /// Where.
        path: String,
        /// Its mode.
        mode: u32,
        /// Its content.
        data: Vec<u8>,
    },
    /// A copy of the image's executable (see [`ImageSpec::executable`]):
    /// the first of each mode is a file, the others hard links to it.
    Executable {
        /// Where.
        path: String,
        /// Its mode.
        mode: u32,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Executable { path, .. } => path,
        }
    }
}

/// What an image is made of.
#[derive(Debug, Clone)]
pub struct ImageSpec<'a> {
    /// The reference as a pod spec writes it (`nginx:1.25`); stored under
    /// its normalised form ([`normalize_reference`]).
    pub reference: &'a str,
    /// The image's entrypoint.
    pub entrypoint: Vec<String>,
    /// The bytes every [`Entry::Executable`] holds.
    pub executable: &'a [u8],
    /// The file system.
    pub entries: Vec<Entry>,
}

/// A built image: its archive and its digests.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The normalised reference the archive names the image by.
    pub name: String,
    /// The image id: the config's digest (`sha256:...`), as the CRI reports
    /// it and a kubelet passes it to CreateContainer.
    pub id: String,
    /// The manifest's digest.
    pub manifest_digest: String,
    /// The layer's digest (also its diff id: it is not compressed).
    pub layer_digest: String,
    /// The layer's size in bytes.
    pub layer_size: usize,
    /// The OCI image layout as one tar.
    pub bytes: Vec<u8>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A reference as containerd stores it (docker's normalisation): a domain
/// (`docker.io` when the first component has no `.` or `:` and is not
/// `localhost`), `library/` for a one-component docker.io name, and the tag
/// `latest` when neither tag nor digest is given. Errors name a reference
/// that is empty, has upper-case letters in its path, or spaces.
pub fn normalize_reference(reference: &str) -> Result<String, String> {
    let bad = |why: &str| format!("image reference `{reference}`: {why}");
    if reference.is_empty() {
        return Err(bad("empty"));
    }
    if reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains white space"));
    }
    // The same split the runtime makes of the annotation (docker's rules).
    let (full, _, tag) = d4c_artifact::event::split_image(reference);
    let digest = reference.split_once('@').map(|(_, d)| d);
    let path = full.split_once('/').map_or("", |(_, p)| p);
    if path.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("the repository must be non-empty and lower-case"));
    }
    Ok(match (tag, digest) {
        (Some(tag), Some(d)) => format!("{full}:{tag}@{d}"),
        (Some(tag), None) => format!("{full}:{tag}"),
        (None, Some(d)) => format!("{full}@{d}"),
        (None, None) => format!("{full}:latest"),
    })
}

/// The components of an absolute canonical path.
fn components(path: &str) -> Result<Vec<&str>, String> {
    if !path.starts_with('/') {
        return Err(format!("image path `{path}` is not absolute"));
    }
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|&c| c == "." || c == "..") || path.contains('\0') {
        return Err(format!("image path `{}` is not canonical", path.escape_debug()));
    }
    if parts.is_empty() {
        return Err("an image entry cannot be `/`".to_string());
    }
    Ok(parts)
}

/// The layer: a tar of `entries`, parents first, in path order.
fn layer(entries: &[Entry], executable: &[u8]) -> Result<Vec<u8>, String> {
    // Every directory: named ones with their modes, implied parents 0755.
    let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
    let mut files: BTreeMap<String, &Entry> = BTreeMap::new();
    for entry in entries {
        let parts = components(entry.path())?;
        for depth in 1..parts.len() {
            dirs.entry(parts.get(..depth).unwrap_or_default().join("/")).or_insert(0o755);
        }
        let relative = parts.join("/");
        match entry {
            Entry::Dir { mode, .. } => {
                dirs.insert(relative, *mode);
            }
            _ => {
                if files.insert(relative.clone(), entry).is_some() {
                    return Err(format!("image path `/{relative}` is given twice"));
                }
            }
        }
    }
    if let Some(both) = files.keys().find(|f| dirs.contains_key(*f)) {
        return Err(format!("image path `/{both}` is both a directory and a file"));
    }
    let mut builder = tar::Builder::new(Vec::new());
    let fail = |path: &str, e: std::io::Error| format!("writing `/{path}` into the layer: {e}");
    // BTreeMap order puts `a` before `a/b`: parents first.
    for (path, mode) in &dirs {
        let mut header = header(tar::EntryType::Directory, *mode, 0);
        builder.append_data(&mut header, format!("{path}/"), std::io::empty()).map_err(|e| fail(path, e))?;
    }
    // The first executable of each mode is the file; later ones link to it.
    let mut first_of_mode: BTreeMap<u32, String> = BTreeMap::new();
    for (path, entry) in &files {
        match entry {
            Entry::File { mode, data, .. } => {
                let mut header = header(tar::EntryType::Regular, *mode, data.len());
                builder.append_data(&mut header, path, data.as_slice()).map_err(|e| fail(path, e))?;
            }
            Entry::Executable { mode, .. } => match first_of_mode.get(mode) {
                Some(target) => {
                    let mut header = header(tar::EntryType::Link, *mode, 0);
                    builder.append_link(&mut header, path, target).map_err(|e| fail(path, e))?;
                }
                None => {
                    let mut header = header(tar::EntryType::Regular, *mode, executable.len());
                    builder.append_data(&mut header, path, executable).map_err(|e| fail(path, e))?;
                    first_of_mode.insert(*mode, path.clone());
                }
            },
            Entry::Dir { .. } => {}
        }
    }
    builder.into_inner().map_err(|e| format!("finishing the layer: {e}"))
}

/// A tar header for root-owned content with no time stamp.
fn header(kind: tar::EntryType, mode: u32, size: usize) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size as u64);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// A content descriptor.
fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// One image's blobs and its entry in the index.
struct Built {
    name: String,
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    /// The manifest's descriptor, with the name annotations and platform.
    descriptor: Value,
}

/// Makes one image's layer, config and manifest.
fn make(spec: &ImageSpec<'_>) -> Result<Built, String> {
    let name = normalize_reference(spec.reference)?;
    let layer = layer(&spec.entries, spec.executable).map_err(|e| format!("image `{name}`: {e}"))?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": spec.entrypoint,
            "Env": [PATH_ENV],
            "WorkingDir": "/",
            // The reference makes the id differ between images of equal
            // content (see the module's invariants).
            "Labels": {"org.opencontainers.image.ref.name": name},
        },
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer)]},
        "history": [{"created_by": "d4c-vmtest (vmtest/src/image.rs)"}],
    });
    let config = serde_json::to_vec(&config).map_err(|e| format!("image `{name}`: config: {e}"))?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, &config),
        "layers": [descriptor(LAYER_MEDIA_TYPE, &layer)],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| format!("image `{name}`: manifest: {e}"))?;
    let tag = name.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/')).unwrap_or("latest");
    let mut descriptor = descriptor(MANIFEST_MEDIA_TYPE, &manifest);
    if let Some(object) = descriptor.as_object_mut() {
        object.insert(
            "annotations".into(),
            json!({"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}),
        );
        object.insert("platform".into(), json!({"architecture": "amd64", "os": "linux"}));
    }
    Ok(Built { name, layer, config, manifest, descriptor })
}

/// The OCI layout of `images` as one tar: blobs shared between images
/// are written once.
fn pack(images: &[Built]) -> Result<Vec<u8>, String> {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": images.iter().map(|b| b.descriptor.clone()).collect::<Vec<_>>(),
    });
    let index = serde_json::to_vec(&index).map_err(|e| format!("the archive's index: {e}"))?;
    let mut archive = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        archive.append_data(&mut header, dir, std::io::empty()).map_err(|e| format!("the archive: {e}"))?;
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let mut files: Vec<(String, &[u8])> =
        vec![("oci-layout".to_string(), layout.as_slice()), ("index.json".to_string(), index.as_slice())];
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", digest(bytes).trim_start_matches("sha256:"));
    for built in images {
        for bytes in [&built.manifest, &built.config, &built.layer] {
            files.push((blob(bytes), bytes.as_slice()));
        }
    }
    let mut seen = BTreeSet::new();
    for (path, bytes) in files {
        if !seen.insert(path.clone()) {
            continue;
        }
        let mut header = header(tar::EntryType::Regular, 0o644, bytes.len());
        archive.append_data(&mut header, &path, bytes).map_err(|e| format!("the archive: {path}: {e}"))?;
    }
    archive.into_inner().map_err(|e| format!("finishing the archive: {e}"))
}

impl Built {
    fn archive(&self, bytes: Vec<u8>) -> Archive {
        Archive {
            name: self.name.clone(),
            id: digest(&self.config),
            manifest_digest: digest(&self.manifest),
            layer_digest: digest(&self.layer),
            layer_size: self.layer.len(),
            bytes,
        }
    }
}

/// Builds the image's OCI archive.
pub fn build(spec: &ImageSpec<'_>) -> Result<Archive, String> {
    let built = make(spec)?;
    let bytes = pack(std::slice::from_ref(&built)).map_err(|e| format!("image `{}`: {e}", built.name))?;
    Ok(built.archive(bytes))
}

/// Builds one OCI archive holding every image of `specs` (one import for
/// all; their names must differ). Returns the archive (its `name` and
/// digests are the first image's) and each image's `(name, id)`.
pub fn build_many(specs: &[ImageSpec<'_>]) -> Result<(Archive, Vec<(String, String)>), String> {
    let built: Vec<Built> = specs.iter().map(make).collect::<Result<_, _>>()?;
    let mut names = BTreeSet::new();
    if let Some(twice) = built.iter().find(|b| !names.insert(b.name.as_str())) {
        return Err(format!("image `{}` is twice in one archive", twice.name));
    }
    let first = built.first().ok_or("an archive of no images")?;
    let bytes = pack(&built)?;
    let ids = built.iter().map(|b| (b.name.clone(), digest(&b.config))).collect();
    Ok((first.archive(bytes), ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// (path, kind, mode, link target, content) of each entry of a tar.
    type Listed = Vec<(String, tar::EntryType, u32, Option<String>, Vec<u8>)>;

    fn list(tar_bytes: &[u8]) -> Result<Listed, String> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
            let kind = entry.header().entry_type();
            let mode = entry.header().mode().map_err(|e| e.to_string())?;
            let link = entry.link_name().map_err(|e| e.to_string())?.map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| e.to_string())?;
            out.push((path, kind, mode, link, data));
        }
        Ok(out)
    }

    fn spec(reference: &str) -> ImageSpec<'static> {
        ImageSpec {
            reference: Box::leak(reference.to_string().into_boxed_str()),
            entrypoint: vec!["/.d4c/agent".into(), "agent".into()],
            executable: b"\x7fELF fake",
            entries: vec![
                Entry::Executable { path: "/.d4c/agent".into(), mode: 0o755 },
                Entry::Executable { path: "/usr/bin/tool".into(), mode: 0o755 },
                Entry::Executable { path: "/usr/bin/suid".into(), mode: 0o4755 },
                Entry::File { path: "/etc/hosts".into(), mode: 0o644, data: b"hosts\n".to_vec() },
                Entry::Dir { path: "/tmp".into(), mode: 0o1777 },
            ],
        }
    }

    #[test]
    fn references_are_normalised_as_containerd_stores_them() -> Result<(), String> {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("docker.io/library/nginx", "docker.io/library/nginx:latest"),
            ("bitnami/nginx:stable", "docker.io/bitnami/nginx:stable"),
            ("ghcr.io/acme/api:2.4.1", "ghcr.io/acme/api:2.4.1"),
            ("localhost:5000/nginx:1.25.3", "localhost:5000/nginx:1.25.3"),
            ("localhost/d4c/pause:1", "localhost/d4c/pause:1"),
            ("quay.io/x/y@sha256:ab", "quay.io/x/y@sha256:ab"),
        ];
        for (given, want) in cases {
            assert_eq!(normalize_reference(given)?, want, "{given}");
        }
        for bad in ["", "Nginx", "a b", "ghcr.io/Acme/x"] {
            assert!(normalize_reference(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn the_layer_has_parents_first_and_one_copy_per_mode() -> Result<(), String> {
        let archive = build(&spec("nginx:1.25"))?;
        let files = list(&archive.bytes)?;
        let layer_path = format!("blobs/sha256/{}", archive.layer_digest.trim_start_matches("sha256:"));
        let layer = files.iter().find(|f| f.0 == layer_path).ok_or("no layer blob")?;
        assert_eq!(digest(&layer.4), archive.layer_digest);
        let entries = list(&layer.4)?;
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [".d4c/", "etc/", "tmp/", "usr/", "usr/bin/", ".d4c/agent", "etc/hosts", "usr/bin/suid", "usr/bin/tool"]
        );
        let find = |p: &str| entries.iter().find(|e| e.0 == p).ok_or(format!("no {p}"));
        // Mode 0755: one file, one link to it; mode 04755 its own file.
        let agent = find(".d4c/agent")?;
        assert_eq!((agent.1, agent.2, agent.4.as_slice()), (tar::EntryType::Regular, 0o755, &b"\x7fELF fake"[..]));
        let tool = find("usr/bin/tool")?;
        assert_eq!((tool.1, tool.3.as_deref()), (tar::EntryType::Link, Some(".d4c/agent")));
        let suid = find("usr/bin/suid")?;
        assert_eq!((suid.1, suid.2), (tar::EntryType::Regular, 0o4755));
        assert_eq!(find("tmp/")?.2, 0o1777);
        assert_eq!(find("usr/")?.2, 0o755);
        assert_eq!(find("etc/hosts")?.4, b"hosts\n");
        Ok(())
    }

    #[test]
    fn the_archive_is_an_oci_layout_whose_digests_hold() -> Result<(), String> {
        let archive = build(&spec("nginx:1.25"))?;
        let files = list(&archive.bytes)?;
        let get = |p: &str| files.iter().find(|f| f.0 == p).map(|f| f.4.clone()).ok_or(format!("no {p}"));
        let blob = |d: &str| get(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")));
        let layout: Value = serde_json::from_slice(&get("oci-layout")?).map_err(|e| e.to_string())?;
        assert_eq!(layout, json!({"imageLayoutVersion": "1.0.0"}));
        let index: Value = serde_json::from_slice(&get("index.json")?).map_err(|e| e.to_string())?;
        let m = index.pointer("/manifests/0").ok_or("no manifest")?;
        assert_eq!(m.pointer("/annotations/io.containerd.image.name"), Some(&json!("docker.io/library/nginx:1.25")));
        assert_eq!(m.pointer("/annotations/org.opencontainers.image.ref.name"), Some(&json!("1.25")));
        assert_eq!(m.pointer("/digest"), Some(&json!(archive.manifest_digest)));
        let manifest_bytes = blob(&archive.manifest_digest)?;
        assert_eq!(digest(&manifest_bytes), archive.manifest_digest);
        assert_eq!(m.pointer("/size"), Some(&json!(manifest_bytes.len())));
        let manifest: Value = serde_json::from_slice(&manifest_bytes).map_err(|e| e.to_string())?;
        assert_eq!(manifest.pointer("/config/digest"), Some(&json!(archive.id)));
        assert_eq!(manifest.pointer("/layers/0/digest"), Some(&json!(archive.layer_digest)));
        assert_eq!(manifest.pointer("/layers/0/size"), Some(&json!(archive.layer_size)));
        assert_eq!(manifest.pointer("/layers/0/mediaType"), Some(&json!(LAYER_MEDIA_TYPE)));
        let config_bytes = blob(&archive.id)?;
        assert_eq!(digest(&config_bytes), archive.id);
        let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| e.to_string())?;
        assert_eq!(config.pointer("/rootfs/diff_ids/0"), Some(&json!(archive.layer_digest)));
        assert_eq!(config.pointer("/config/Entrypoint"), Some(&json!(["/.d4c/agent", "agent"])));
        assert_eq!(config.pointer("/architecture"), Some(&json!("amd64")));
        Ok(())
    }

    #[test]
    fn equal_content_under_two_names_makes_two_ids_and_one_layer() -> Result<(), String> {
        let a = build(&spec("nginx:1.25"))?;
        let b = build(&spec("docker.io/bitnami/nginx:1.25"))?;
        assert_ne!(a.id, b.id);
        assert_eq!(a.layer_digest, b.layer_digest);
        // Reproducible.
        assert_eq!(build(&spec("nginx:1.25"))?.bytes, a.bytes);
        Ok(())
    }

    #[test]
    fn several_images_share_one_archive_and_their_layer() -> Result<(), String> {
        let (archive, ids) = build_many(&[spec("nginx:1.25"), spec("redis:7")])?;
        let one = build(&spec("nginx:1.25"))?;
        let two = build(&spec("redis:7"))?;
        assert_eq!(
            ids,
            [
                ("docker.io/library/nginx:1.25".to_string(), one.id.clone()),
                ("docker.io/library/redis:7".to_string(), two.id.clone())
            ]
        );
        let files = list(&archive.bytes)?;
        let index = files.iter().find(|f| f.0 == "index.json").ok_or("no index")?;
        let index: Value = serde_json::from_slice(&index.4).map_err(|e| e.to_string())?;
        let names: Vec<&Value> = (0..2)
            .filter_map(|i| index.pointer(&format!("/manifests/{i}/annotations/io.containerd.image.name")))
            .collect();
        assert_eq!(names, [&json!("docker.io/library/nginx:1.25"), &json!("docker.io/library/redis:7")]);
        // The layer once (equal content), two configs, two manifests.
        let blobs = files.iter().filter(|f| f.0.starts_with("blobs/sha256/") && f.1 == tar::EntryType::Regular).count();
        assert_eq!(blobs, 5);
        assert!(build_many(&[spec("nginx:1.25"), spec("docker.io/library/nginx:1.25")]).is_err());
        Ok(())
    }

    #[test]
    fn bad_content_is_refused_by_name() {
        let twice = ImageSpec {
            entries: vec![
                Entry::File { path: "/a".into(), mode: 0o644, data: vec![] },
                Entry::Executable { path: "/a".into(), mode: 0o755 },
            ],
            ..spec("x")
        };
        assert!(build(&twice).is_err_and(|e| e.contains("`/a` is given twice")));
        let both = ImageSpec {
            entries: vec![
                Entry::File { path: "/a".into(), mode: 0o644, data: vec![] },
                Entry::File { path: "/a/b".into(), mode: 0o644, data: vec![] },
            ],
            ..spec("x")
        };
        assert!(build(&both).is_err_and(|e| e.contains("both a directory and a file")));
        let relative = ImageSpec { entries: vec![Entry::Dir { path: "tmp".into(), mode: 0o755 }], ..spec("x") };
        assert!(build(&relative).is_err());
    }
}
