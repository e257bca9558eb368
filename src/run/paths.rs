//! Paths inside a run, stored relative to it, so a run folder that is moved still resumes.
//!
//! A stage's result often names the stage's own files (`runs/x/grm`, a trained model), and
//! later stages take such results as inputs. Stored as written, a moved run would find its
//! results naming the old place and every fingerprint over them changed. So every string of
//! a result that is the run's folder or a path inside it is stored relative to the folder,
//! with a [JSON pointer](https://www.rfc-editor.org/rfc/rfc6901) to each such string beside
//! the result; reading it back joins them to wherever the run is now. Fingerprints are taken
//! over the relative form too, relative to the run or to a run it reuses (whose files it
//! takes as its own). A path is recognised as the run's folder was given (`--out
//! runs/x`: `runs/x/grm`) or in its absolute form; a string that merely equals a relative
//! path (`"grm"`) is left as it is.

use std::path::Path;

use serde_json::Value;

/// The spellings of a run folder that its paths start with: as given, absolute, and with
/// symbolic links resolved.
pub fn spellings(dir: &Path) -> Vec<String> {
    let mut forms = vec![dir.to_path_buf()];
    forms.extend(std::path::absolute(dir).ok());
    forms.extend(std::fs::canonicalize(dir).ok());
    let mut forms: Vec<String> = forms
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    forms.dedup();
    forms
}

/// `value` with every path inside one of the runs `dirs` made relative to it (`.` for the
/// folder itself), and the JSON pointers of the strings that were.
pub fn relativize(value: &Value, dirs: &[&Path]) -> (Value, Vec<String>) {
    let forms: Vec<String> = dirs.iter().flat_map(|d| spellings(d)).collect();
    let mut pointers = Vec::new();
    let relative = walk(value, &forms, &mut String::new(), &mut pointers);
    (relative, pointers)
}

fn walk(value: &Value, forms: &[String], at: &mut String, found: &mut Vec<String>) -> Value {
    match value {
        Value::String(s) => match inside(s, forms) {
            Some(rest) => {
                found.push(at.clone());
                Value::String(rest)
            }
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| descend(at, &i.to_string(), |at| walk(v, forms, at, found)))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    (k.clone(), descend(at, &key, |at| walk(v, forms, at, found)))
                })
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// Run `f` with `/token` appended to the pointer `at`, restoring it after.
fn descend(at: &mut String, token: &str, f: impl FnOnce(&mut String) -> Value) -> Value {
    let len = at.len();
    at.push('/');
    at.push_str(token);
    let out = f(at);
    at.truncate(len);
    out
}

/// The part of `s` after one of the run's spellings (`.` for the folder itself).
fn inside(s: &str, forms: &[String]) -> Option<String> {
    forms.iter().find_map(|form| {
        let rest = s.strip_prefix(form.as_str())?;
        match rest {
            "" | "/" => Some(".".to_string()),
            _ => rest
                .strip_prefix('/')
                .map(|r| r.trim_end_matches('/').to_string()),
        }
    })
}

/// A stored `value` with the strings at `pointers` joined to the run folder `dir` again.
/// A pointer that names no string is an error (the stage file was edited by hand).
pub fn resolve(mut value: Value, pointers: &[String], dir: &Path) -> Result<Value, String> {
    for pointer in pointers {
        let slot = value
            .pointer_mut(pointer)
            .ok_or_else(|| format!("run path `{pointer}` names nothing in the result"))?;
        let Value::String(rest) = slot else {
            return Err(format!(
                "run path `{pointer}` is not a string in the result"
            ));
        };
        let joined = if rest == "." {
            dir.to_path_buf()
        } else {
            dir.join(rest.as_str())
        };
        *slot = Value::String(joined.to_string_lossy().into_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_inside_the_run_are_stored_relative_and_read_back_where_it_is_now() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join("runs/a");
        std::fs::create_dir_all(&old).unwrap();
        let old_s = old.to_string_lossy();
        let value = json!({
            "model": {"path": format!("{old_s}/grm"), "made_by": "abc"},
            "dirs": [format!("{old_s}/x/y"), old_s, "runs/ab/grm", format!("{old_s}b/z")],
            "a/b~": format!("{old_s}/c"),
            "n": 3,
        });
        let (relative, pointers) = relativize(&value, &[&old]);
        assert_eq!(
            relative,
            json!({
                "model": {"path": "grm", "made_by": "abc"},
                "dirs": ["x/y", ".", "runs/ab/grm", format!("{old_s}b/z")],
                "a/b~": "c",
                "n": 3,
            })
        );
        assert_eq!(pointers, ["/a~1b~0", "/dirs/0", "/dirs/1", "/model/path"]);

        let new = tmp.path().join("moved");
        let back = resolve(relative, &pointers, &new).unwrap();
        let new_s = new.to_string_lossy();
        assert_eq!(back["model"]["path"], json!(format!("{new_s}/grm")));
        assert_eq!(back["dirs"][1], json!(new_s));
        assert_eq!(back["a/b~"], json!(format!("{new_s}/c")));
        assert_eq!(back["dirs"][2], json!("runs/ab/grm"));
    }

    #[test]
    fn a_run_given_as_a_relative_path_matches_that_spelling_too() {
        let forms = vec!["runs/a".to_string()];
        assert_eq!(inside("runs/a/grm", &forms).as_deref(), Some("grm"));
        assert_eq!(inside("runs/a", &forms).as_deref(), Some("."));
        assert_eq!(inside("runs/ab", &forms), None);
        assert_eq!(inside("xruns/a/grm", &forms), None);
    }

    #[test]
    fn a_pointer_to_nothing_is_an_error() {
        let err = resolve(json!({"a": 1}), &["/b".into()], Path::new("r")).unwrap_err();
        assert!(err.contains("`/b` names nothing"), "{err}");
        let err = resolve(json!({"a": 1}), &["/a".into()], Path::new("r")).unwrap_err();
        assert!(err.contains("not a string"), "{err}");
    }
}
