//! Exposing tensors to other nodes (added by graft, see PATCHED.md).
//!
//! Every tensor a node exposes to the other nodes goes through [`expose_counted`], which adds
//! `payload bytes × downloads` to the node's counter; [`global_bytes_sent`] reads it. There is one
//! node per backend type and process, so the counter is kept per backend type.
//!
//! It also works around a lost wake-up in burn-communication 0.21.0's `TensorDataService`: a
//! download request that finds no tensor yet waits on `notify_waiters`, which stores no permit,
//! so a tensor exposed between its check and its wait is not served until the next exposure —
//! never, after a collective's last one (a hang). Until the tensor is taken, a task re-sends the
//! notification with a growing pause (1 ms to 50 ms).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use burn_backend::{Backend, TensorData};
use burn_communication::Protocol;
use burn_communication::data_service::{TensorDataService, TensorTransferId};

static BYTES_SENT: OnceLock<Mutex<HashMap<TypeId, u64>>> = OnceLock::new();

fn counters() -> std::sync::MutexGuard<'static, HashMap<TypeId, u64>> {
    BYTES_SENT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Expose `data` for `downloads` downloads by other nodes under `transfer_id`, counting its bytes.
pub(crate) async fn expose_counted<B: Backend, P: Protocol>(
    data_service: &Arc<TensorDataService<B, P>>,
    data: TensorData,
    downloads: u32,
    transfer_id: u64,
) {
    *counters().entry(TypeId::of::<B>()).or_default() +=
        data.bytes.len() as u64 * u64::from(downloads);
    data_service
        .expose_data(data, downloads, transfer_id.into())
        .await;
    let service = Arc::downgrade(data_service);
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(1);
        loop {
            tokio::time::sleep(pause).await;
            let Some(service) = service.upgrade() else {
                return;
            };
            let exposed = service.exposed_tensors.lock().await;
            if !exposed.contains_key(&TensorTransferId::from(transfer_id)) {
                return;
            }
            drop(exposed);
            service.new_tensor_notify.notify_waiters();
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    });
}

/// [`expose_counted`] for a tensor.
pub(crate) async fn expose_tensor_counted<B: Backend, P: Protocol>(
    data_service: &Arc<TensorDataService<B, P>>,
    tensor: B::FloatTensorPrimitive,
    downloads: u32,
    transfer_id: u64,
) {
    let data = B::float_into_data(tensor)
        .await
        .expect("a tensor on this node can be read");
    expose_counted(data_service, data, downloads, transfer_id).await
}

/// Tensor payload bytes (the tensors' data, without framing) that this process's node for backend
/// `B` has served to other nodes so far, in every global collective (all-reduce, reduce-scatter,
/// all-gather). Added by graft to measure and test the inter-node traffic.
pub fn global_bytes_sent<B: Backend>() -> u64 {
    counters().get(&TypeId::of::<B>()).copied().unwrap_or(0)
}
