"""Faces in whole photos and videos: detection, landmarks, alignment, paste-back (facezoo-restore)."""
