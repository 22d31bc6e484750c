// Generators of random policies, containers and events from small
// alphabets, shared by the agreement tests of the compiler (direct vs table
// evaluator) and of the kernel probes (table evaluator vs the BPF program).
// Included with `include!`: the including file imports `proptest::prelude::*`,
// `proptest::sample::select` and the d4c types used here.
const COMPONENTS: &[&str] = &["a", "b", "ab", "abc", "bin"];
const NAMES: &[&str] = &["sh", "bash", "ba", "python3", "b"];
const IMAGES: &[&str] = &["nginx", "redis", "ngx"];
const NAMESPACES: &[&str] = &["default", "prod", "pro"];
const USER_NAMES: &[&str] = &["root", "app", "ap", "web"];
const USER_IDS: &[&str] = &["0", "1000", "1001"];

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(select(COMPONENTS), 0..4).prop_map(|c| format!("/{}", c.join("/")))
}

fn path_pattern() -> impl Strategy<Value = PathPattern> {
    (path(), 0..4u8, select(&["a", "b", "ab", "x"][..])).prop_map(|(dir, kind, partial)| {
        let dir = if dir == "/" { String::new() } else { dir };
        match kind {
            0 => PathPattern::Exact(if dir.is_empty() { "/".into() } else { dir }),
            1 => PathPattern::Children(dir),
            2 => PathPattern::Recursive(dir),
            _ => PathPattern::Prefix(format!("{dir}/{partial}")),
        }
    })
}

fn text_pattern(values: &'static [&'static str]) -> impl Strategy<Value = TextPattern> {
    (select(values), any::<bool>(), 0..3usize).prop_map(|(v, prefix, cut)| {
        if prefix {
            TextPattern::Prefix(v.get(..v.len().saturating_sub(cut)).unwrap_or("").to_string())
        } else {
            TextPattern::Exact(v.to_string())
        }
    })
}

fn some<T: std::fmt::Debug + Clone + Ord>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<T>> {
    prop::collection::btree_set(s, 1..3).prop_map(|s| s.into_iter().collect())
}

fn file_selector() -> impl Strategy<Value = SelectorModel> {
    (
        prop::option::of(some(select(Operation::of_kind(d4c_artifact::ops::Kind::File)))),
        prop::option::of(some(path_pattern())),
        any::<(bool, bool)>(),
        prop::option::of(some(text_pattern(IMAGES))),
        prop::option::of(some(text_pattern(NAMESPACES))),
        prop::option::of(some(select(&["app:web", "app:", "tier:f*", "app:*"][..]))),
    )
        .prop_map(|(ops, paths, (mounts, files), images, namespaces, labels)| {
            let mut c = Vec::new();
            if let Some(ops) = ops {
                c.push((ConditionKey::Operation, Values::Operations(ops)));
            }
            if let Some(p) = paths {
                c.push((ConditionKey::TargetFilePath, Values::Paths(p)));
            }
            if mounts {
                c.push((ConditionKey::IgnoreVolumeMounts, Values::Flag(true)));
            } else if files {
                c.push((ConditionKey::IgnoreVolumeFiles, Values::Flag(true)));
            }
            if let Some(i) = images {
                c.push((ConditionKey::ContainerImageName, Values::Text(i)));
            }
            if let Some(n) = namespaces {
                c.push((ConditionKey::KubernetesNamespace, Values::Text(n)));
            }
            if let Some(l) = labels {
                let labels = l.iter().map(|t| LabelPattern::parse(t).unwrap()).collect();
                c.push((ConditionKey::KubernetesPodLabel, Values::Labels(labels)));
            }
            c.sort_by_key(|(k, _)| *k);
            SelectorModel { name: String::new(), conditions: c }
        })
}

fn process_selector() -> impl Strategy<Value = SelectorModel> {
    (
        prop::option::of(some(select(Operation::of_kind(d4c_artifact::ops::Kind::Process)))),
        prop::option::of(some(path_pattern())),
        prop::option::of(some(text_pattern(NAMES))),
        prop::option::of(any::<bool>()),
        prop::option::of(some(text_pattern(IMAGES))),
        prop::option::of(some(select(USER_IDS).prop_map(|id| TextPattern::Exact(id.to_string())))),
        prop::option::of(some(text_pattern(USER_NAMES))),
    )
        .prop_map(|(ops, exes, names, interactive, images, user_ids, user_names)| {
            let mut c = Vec::new();
            if let Some(ops) = ops {
                c.push((ConditionKey::Operation, Values::Operations(ops)));
            }
            if let Some(p) = exes {
                c.push((ConditionKey::ProcessExecutable, Values::Paths(p)));
            }
            if let Some(n) = names {
                c.push((ConditionKey::ProcessName, Values::Text(n)));
            }
            if let Some(i) = interactive {
                c.push((ConditionKey::SessionLeaderInteractive, Values::Flag(i)));
            }
            if let Some(i) = images {
                c.push((ConditionKey::ContainerImageName, Values::Text(i)));
            }
            if let Some(ids) = user_ids {
                c.push((ConditionKey::ProcessUserId, Values::Text(ids)));
            }
            if let Some(n) = user_names {
                c.push((ConditionKey::ProcessUserName, Values::Text(n)));
            }
            c.sort_by_key(|(k, _)| *k);
            SelectorModel { name: String::new(), conditions: c }
        })
}

/// An acting user: an id (one the policies name, or not) and the name a
/// container's passwd may give it (or none).
fn user() -> impl Strategy<Value = User> {
    (select(&[0u32, 1000, 1001, 4242][..]), prop::option::of(select(USER_NAMES)))
        .prop_map(|(id, name)| User { id, name: name.map(str::to_string) })
}

fn rules(selector: impl Strategy<Value = SelectorModel>, max: usize) -> impl Strategy<Value = RuleSet> {
    prop::collection::vec(selector, 1..max).prop_flat_map(|selectors| {
        let n = selectors.len();
        let response = (some(0..n), prop::collection::btree_set(0..n, 0..2), 1..8u8).prop_map(|(m, e, a)| {
            ResponseModel { matches: m, excludes: e.into_iter().collect(), actions: Actions::from_bits(a) }
        });
        (Just(selectors), prop::collection::vec(response, 1..5)).prop_map(|(mut selectors, responses)| {
            for (i, s) in selectors.iter_mut().enumerate() {
                s.name = format!("s{i}");
            }
            RuleSet { selectors, responses }
        })
    })
}

fn policy() -> impl Strategy<Value = CheckedPolicy> {
    (rules(file_selector(), 7), rules(process_selector(), 7)).prop_map(|(file, process)| CheckedPolicy {
        version: None,
        file,
        process,
        // The tables hold no network rules (`D4C0044`).
        network: RuleSet::default(),
    })
}

fn container() -> impl Strategy<Value = Container> {
    (
        prop::option::of(select(IMAGES)),
        prop::option::of(select(NAMESPACES)),
        prop::collection::vec((select(&["app", "tier"][..]), select(&["web", "", "front", "f"][..])), 0..3),
    )
        .prop_map(|(image, namespace, labels)| Container {
            image_name: image.map(str::to_string),
            namespace: namespace.map(str::to_string),
            labels: labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Container::default()
        })
}

fn event() -> impl Strategy<Value = Event> {
    let file = (
        select(Operation::of_kind(d4c_artifact::ops::Kind::File)),
        path(),
        select(&Volume::ALL[..]),
        any::<bool>(),
    )
        .prop_map(|(operation, path, volume, directory)| {
            let path = (operation != Operation::ExecMemFd).then_some(path);
            // Directories are renamed, moved and mounted; never exec'd.
            let directory = directory && operation != Operation::ExecMemFd;
            Event::File(FileEvent { operation, path, volume, directory })
        });
    let process = (
        select(Operation::of_kind(d4c_artifact::ops::Kind::Process)),
        prop_oneof![path(), Just("memfd:x".to_string())],
        select(NAMES),
        any::<bool>(),
        user(),
    )
        .prop_map(|(operation, executable, name, interactive, user)| {
            Event::Process(ProcessEvent { operation, executable, name: name.to_string(), interactive, user })
        });
    prop_oneof![file, process]
}

