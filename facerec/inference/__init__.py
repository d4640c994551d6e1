"""A trained model at work: `facerec.load` and FaceModel (facemodel), images in any form (images),
embedding folders and lists (embed_job), 1:N identification (identify), ONNX export (export)."""
