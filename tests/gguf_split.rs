//! Split models: every shard name opens the whole model, metadata merged
//! without `split.*`, every tensor's bytes equal to the unsplit file's;
//! inconsistent or missing shards are errors naming the file.

mod common;

use quantmix::gguf::split::{shard_path, KEY_SPLIT_COUNT};
use quantmix::gguf::{GgufErrorKind, GgufFile, GgufModel, GgufWriter, MetaValue, TensorSpec};

#[test]
fn split_model_reads_as_the_original() {
    let src = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let prefix = dir.path().join("synth");
    let paths = common::write_split(&src, &prefix, 3);
    let orig = GgufFile::open(&src).unwrap();
    for p in &paths {
        let m = GgufModel::open(p).unwrap();
        assert_eq!(m.n_shards(), 3);
        assert_eq!(m.path(), paths[0]);
        let a: Vec<_> = orig.metadata().iter().collect();
        let b: Vec<_> = m.metadata().iter().collect();
        assert_eq!(a, b, "merged metadata differs from the original");
        assert_eq!(m.tensors().len(), orig.tensors().len());
        for (i, (t, u)) in orig.tensors().iter().zip(m.tensors()).enumerate() {
            assert_eq!((&t.name, &t.shape, t.ty), (&u.name, &u.shape, u.ty));
            assert!(orig.tensor_data(t) == m.tensor_data(u), "{}", t.name);
            assert_eq!(m.tensor(&t.name), Some(u));
            assert!(m.shard_index(i) < 3);
        }
        assert_eq!(m.shard_index(0), 0);
        assert_eq!(m.shard_index(m.tensors().len() - 1), 2);
    }
    // An unsplit file is a one-shard model.
    let m = GgufModel::open(&src).unwrap();
    assert!(!m.is_split());
    assert_eq!(m.file_bytes(), std::fs::metadata(&src).unwrap().len());
}

#[test]
fn broken_splits_are_errors_naming_the_file() {
    let src = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let prefix = dir.path().join("m");
    let paths = common::write_split(&src, &prefix, 3);

    // A missing shard: the error names it.
    std::fs::rename(&paths[2], dir.path().join("elsewhere.gguf")).unwrap();
    let e = GgufModel::open(&paths[0]).unwrap_err();
    assert!(matches!(e.kind, GgufErrorKind::Io(_)), "{e}");
    assert!(e.to_string().contains("m-00003-of-00003.gguf"), "{e}");
    std::fs::rename(dir.path().join("elsewhere.gguf"), &paths[2]).unwrap();

    // A shard renamed out of the naming scheme cannot find its siblings.
    let odd = dir.path().join("renamed.gguf");
    std::fs::copy(&paths[0], &odd).unwrap();
    let e = GgufModel::open(&odd).unwrap_err();
    assert!(matches!(e.kind, GgufErrorKind::Split(_)) && e.to_string().contains("renamed.gguf"), "{e}");

    // Shards of another split under the wrong name: split.no disagrees.
    let other = dir.path().join("x");
    let xs = common::write_split(&src, &other, 3);
    std::fs::copy(&paths[1], &xs[2]).unwrap();
    let e = GgufModel::open(&xs[0]).unwrap_err();
    assert!(matches!(e.kind, GgufErrorKind::Split(_)), "{e}");
    assert!(e.to_string().contains("x-00003-of-00003.gguf"), "{e}");

    // The count in the name must match split.count.
    let wrong = shard_path(&dir.path().join("w"), 0, 2);
    std::fs::copy(&paths[0], &wrong).unwrap();
    let e = GgufModel::open(&wrong).unwrap_err();
    assert!(matches!(e.kind, GgufErrorKind::Split(_)), "{e}");

    // A tensor present in two shards.
    let g = GgufFile::open(&src).unwrap();
    let t = &g.tensors()[0];
    let dup = dir.path().join("d");
    for i in 0..2 {
        let mut m = if i == 0 { g.metadata().clone() } else { Default::default() };
        m.set("split.no", MetaValue::U16(i as u16));
        m.set(KEY_SPLIT_COUNT, MetaValue::U16(2));
        let spec = TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty };
        let mut w = GgufWriter::create(&shard_path(&dup, i, 2), &m, &[spec], 32).unwrap();
        w.write_tensor(g.tensor_data(t)).unwrap();
        w.finish().unwrap();
    }
    let e = GgufModel::open(shard_path(&dup, 0, 2)).unwrap_err();
    assert!(matches!(e.kind, GgufErrorKind::DuplicateTensor(_)), "{e}");
}
