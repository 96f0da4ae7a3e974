//! An in-memory [`Llama`] as a [`TensorSource`]: parameters are read by HF name through the
//! crate's key map and copied to the host one at a time, so saving a model to an HF directory
//! needs one tensor of host memory beyond the model itself.

use burn::tensor::backend::Backend;

use super::dtype::ExportDtype;
use super::{Result, TensorData, TensorSource, TensorSpec};
use crate::keymap::hf_params;
use crate::model::Llama;

/// Reads the parameters of a model for export (HF names, HF layout; `lm_head` only when untied).
pub struct ModelSource<'a, B: Backend> {
    model: &'a Llama<B>,
}

impl<'a, B: Backend> ModelSource<'a, B> {
    pub fn new(model: &'a Llama<B>) -> Self {
        Self { model }
    }
}

impl<B: Backend> TensorSource for ModelSource<'_, B> {
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
        hf_params(self.model.config())
            .into_iter()
            .map(|(name, shape)| TensorSpec {
                name,
                shape,
                dtype: dtype.safetensors(),
            })
            .collect()
    }

    fn read(&mut self, name: &str) -> Result<TensorData<'_>> {
        let data = self.model.param_by_name(name)?.into_data();
        TensorData::from_burn(name, data)
    }
}
