//! Loading task records from JSONL (ECQA, OpenBookQA, GSM8K, a user's own) or a JSON array
//! (SVAMP), normalised to [`Problem`].
//!
//! Fields are found by name: `problem`/`question` for the problem, `solution` or GSM8K's
//! `answer` with `<<…>>` annotations and `#### N`, `answer`; SVAMP's `Body`, `Question`,
//! `Equation`, `Answer`. A [`FieldMap`] renames a user's fields. A malformed line or a
//! missing field is an error naming the file, the line and the field.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Problem;
use crate::files;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    File(#[from] files::FileError),
    #[error("{path}:{line}: {message}")]
    Record {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no records (an empty split can be neither trained nor evaluated on)")]
    Empty { path: PathBuf },
}

/// Field names in the user's records for `problem`, `solution` and `answer`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldMap {
    pub problem: String,
    pub solution: String,
    pub answer: String,
}

impl Default for FieldMap {
    fn default() -> Self {
        Self {
            problem: "problem".into(),
            solution: "solution".into(),
            answer: "answer".into(),
        }
    }
}

/// GSM8K's `answer`: annotations dropped, `#### N` turned into `The answer is N`.
/// Returns (solution, answer).
pub fn normalize_gsm8k(answer: &str) -> (String, String) {
    let mut lines = Vec::new();
    let mut gold = String::new();
    for line in answer.lines() {
        if let Some(n) = line.trim().strip_prefix("####") {
            gold = n.trim().replace(',', "");
            continue;
        }
        let mut out = String::new();
        let mut rest = line;
        while let Some(start) = rest.find("<<") {
            let Some(len) = rest[start..].find(">>") else {
                break;
            };
            out.push_str(&rest[..start]);
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        lines.push(out);
    }
    lines.push(format!("The answer is {gold}"));
    (lines.join("\n"), gold)
}

/// A number as the answer line writes it: `51.0` → `51`.
fn number_text(v: &Value) -> Option<String> {
    let x = v.as_f64()?;
    Some(if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    })
}

fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

/// One record (line `line` of `path`) as a [`Problem`].
fn problem(
    record: &Value,
    fields: &FieldMap,
    path: &Path,
    line: usize,
) -> Result<Problem, LoadError> {
    let err = |message: String| LoadError::Record {
        path: path.to_path_buf(),
        line,
        message,
    };
    // SVAMP: Body + Question; the equation as the one step.
    if let (Some(body), Some(question)) = (text(record, "Body"), text(record, "Question")) {
        let answer = record
            .get("Answer")
            .and_then(number_text)
            .ok_or_else(|| err("field `Answer` must be a number".into()))?;
        let equation = text(record, "Equation").unwrap_or_default().trim();
        let solution = format!("{equation} = {answer}\nThe answer is {answer}");
        return Ok(Problem {
            problem: format!("{} {}", body.trim(), question.trim()),
            solution,
            answer,
        });
    }
    // GSM8K: {question, answer with #### N}.
    if fields == &FieldMap::default()
        && let (Some(question), Some(answer)) = (text(record, "question"), text(record, "answer"))
        && answer.contains("####")
    {
        let (solution, gold) = normalize_gsm8k(answer);
        return Ok(Problem {
            problem: question.to_string(),
            solution,
            answer: gold,
        });
    }
    let field = |name: &str| -> Result<String, LoadError> {
        match record.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v @ Value::Number(_)) => Ok(number_text(v).unwrap_or_default()),
            Some(_) => Err(err(format!("field `{name}` must be a string"))),
            None => Err(err(format!("missing field `{name}`"))),
        }
    };
    Ok(Problem {
        problem: field(&fields.problem)?,
        solution: field(&fields.solution)?,
        answer: field(&fields.answer)?,
    })
}

/// Every record of `path`: a JSONL file, or a `.json` file holding one array.
pub fn load(path: &Path, fields: &FieldMap) -> Result<Vec<Problem>, LoadError> {
    let records: Vec<(usize, Value)> = if path.extension().is_some_and(|e| e == "json") {
        match files::read_json(path)? {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i + 1, v))
                .collect(),
            _ => {
                return Err(LoadError::Record {
                    path: path.to_path_buf(),
                    line: 1,
                    message: "expected a JSON array of records".into(),
                });
            }
        }
    } else {
        files::read_jsonl_numbered(path)?
    };
    if records.is_empty() {
        return Err(LoadError::Empty {
            path: path.to_path_buf(),
        });
    }
    records
        .iter()
        .map(|(line, r)| problem(r, fields, path, *line))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_split_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("test.jsonl", ""),
            ("blank.jsonl", "\n\n"),
            ("none.json", "[]"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = load(&path, &FieldMap::default()).unwrap_err().to_string();
            assert!(
                err.starts_with(&path.display().to_string()) && err.contains("no records"),
                "{err}"
            );
        }
    }

    #[test]
    fn gsm8k_is_normalised() {
        let (solution, answer) = normalize_gsm8k(
            "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 1,018",
        );
        assert_eq!(
            solution,
            "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day.\nThe answer is 1018"
        );
        assert_eq!(answer, "1018");
    }
}
