//! Copying checkpoint tensors into the model's parameters one at a time (a dequantised GGUF
//! tensor or a memory-mapped safetensors view is dropped as soon as it is copied), checking
//! names and shapes, and reporting every parameter the checkpoint did not provide.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tch::Tensor;

use super::ModelError;

pub struct Filler<'a> {
    vars: &'a HashMap<String, Tensor>,
    missing: HashSet<&'a str>,
    origin: PathBuf,
    /// A name the model does not have is an error (adapters: every tensor must land).
    strict: bool,
}

impl<'a> Filler<'a> {
    /// Fill `vars` from the checkpoint at `origin` (named in errors).
    pub fn new(vars: &'a HashMap<String, Tensor>, origin: &Path) -> Self {
        Self {
            vars,
            missing: vars.keys().map(String::as_str).collect(),
            origin: origin.to_path_buf(),
            strict: false,
        }
    }

    /// [`Self::new`] where a tensor the model has no parameter for is an error.
    pub fn new_strict(vars: &'a HashMap<String, Tensor>, origin: &Path) -> Self {
        Self {
            strict: true,
            ..Self::new(vars, origin)
        }
    }

    /// Copy `tensor` into the parameter `name` (converting dtype and device). Names the
    /// model has no parameter for (e.g. `rotary_emb.inv_freq`) are skipped.
    pub fn put(&mut self, name: &str, tensor: &Tensor) -> Result<(), ModelError> {
        let Some(var) = self.vars.get(name) else {
            if self.strict {
                return Err(ModelError::UnexpectedTensor {
                    path: self.origin.clone(),
                    tensor: name.to_string(),
                });
            }
            tracing::debug!("{}: ignoring tensor {name}", self.origin.display());
            return Ok(());
        };
        if var.size() != tensor.size() {
            return Err(ModelError::ShapeMismatch {
                path: self.origin.clone(),
                tensor: name.to_string(),
                expected: var.size(),
                found: tensor.size(),
            });
        }
        crate::grad::no_grad(|| var.shallow_clone().f_copy_(tensor)).map_err(ModelError::torch)?;
        self.missing.remove(name);
        Ok(())
    }

    /// Every parameter must have been provided.
    pub fn finish(self) -> Result<(), ModelError> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let mut names: Vec<&str> = self.missing.into_iter().collect();
        names.sort();
        Err(ModelError::MissingTensors {
            path: self.origin,
            count: names.len(),
            names: names.iter().take(5).copied().collect::<Vec<_>>().join(", "),
        })
    }
}
